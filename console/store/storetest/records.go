package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

func testPolicyRevisions(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, err := s.Policy(ctx)
	if err != nil || p.Revision != 0 || len(p.Runtime) != 0 {
		t.Fatalf("Policy on an empty store = %+v, %v; want revision 0", p, err)
	}
	if rev, err := s.PolicyRevision(ctx); err != nil || rev != 0 {
		t.Fatalf("PolicyRevision on an empty store = %d, %v", rev, err)
	}
	one := policy.Policy{Runtime: []policy.RuntimeRule{{Name: "r1", Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}}}}}
	rev, err := s.SavePolicy(ctx, 0, one, store.PolicyChange{Actor: "alice", Action: "add runtime rule", Rule: "r1", Time: base})
	if err != nil || rev != 1 {
		t.Fatalf("SavePolicy(base 0) = %d, %v; want 1", rev, err)
	}
	two := one
	two.WAF = []policy.WAFRule{{Name: "w1", ExternalPort: 80, AppPort: 8080, Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent}}}
	if _, err := s.SavePolicy(ctx, 0, two, store.PolicyChange{Actor: "bob", Action: "stale"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("SavePolicy on a stale base: err = %v, want ErrConflict", err)
	}
	if rev, err := s.SavePolicy(ctx, 1, two, store.PolicyChange{Actor: "bob", Action: "add waf rule", Rule: "w1", Time: base.Add(time.Minute)}); err != nil || rev != 2 {
		t.Fatalf("SavePolicy(base 1) = %d, %v; want 2", rev, err)
	}
	got, err := s.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 2 || len(got.Runtime) != 1 || got.Runtime[0].Processes.Denied[0] != "mkdir" ||
		len(got.WAF) != 1 || got.WAF[0].Protections[policy.ProtectionSQLi] != policy.EffectPrevent {
		t.Fatalf("Policy = %+v, want revision 2 with the runtime and WAF rules", got)
	}
	old, err := s.PolicyAt(ctx, 1)
	if err != nil || old.Revision != 1 || len(old.WAF) != 0 {
		t.Fatalf("PolicyAt(1) = %+v, %v; want revision 1 without WAF rules", old, err)
	}
	if _, err := s.PolicyAt(ctx, 9); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PolicyAt(9): err = %v, want ErrNotFound", err)
	}
	changes, err := s.PolicyChanges(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.PolicyChange{
		{Revision: 2, Time: base.Add(time.Minute), Actor: "bob", Action: "add waf rule", Rule: "w1"},
		{Revision: 1, Time: base, Actor: "alice", Action: "add runtime rule", Rule: "r1"},
	}
	if len(changes) != len(want) {
		t.Fatalf("PolicyChanges = %+v, want %+v", changes, want)
	}
	for i := range want {
		if !changes[i].Time.Equal(want[i].Time) || changes[i].Revision != want[i].Revision || changes[i].Actor != want[i].Actor ||
			changes[i].Action != want[i].Action || changes[i].Rule != want[i].Rule {
			t.Errorf("PolicyChanges[%d] = %+v, want %+v", i, changes[i], want[i])
		}
	}
	if c, err := s.PolicyChanges(ctx, 1); err != nil || len(c) != 1 || c[0].Revision != 2 {
		t.Errorf("PolicyChanges(limit 1) = %+v, %v", c, err)
	}
}

// Concurrent writers on the same base: exactly one wins, the others conflict.
func testPolicyConcurrentSave(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := policy.Policy{Runtime: []policy.RuntimeRule{{Name: fmt.Sprintf("r%d", i)}}}
			_, errs[i] = s.SavePolicy(ctx, 0, p, store.PolicyChange{Actor: "x", Action: "race"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("SavePolicy race: unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent saves on base 0 succeeded, want exactly 1", won, n)
	}
	if rev, _ := s.PolicyRevision(ctx); rev != 1 {
		t.Fatalf("revision after the race = %d, want 1", rev)
	}
}

func testWaitPolicy(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Already different: returns at once.
	if _, err := s.SavePolicy(ctx, 0, policy.Policy{}, store.PolicyChange{Actor: "a", Action: "init"}); err != nil {
		t.Fatal(err)
	}
	if rev, err := s.WaitPolicy(ctx, 0); err != nil || rev != 1 {
		t.Fatalf("WaitPolicy(0) with revision 1 stored = %d, %v; want 1 at once", rev, err)
	}
	// Unchanged: ends with the context.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	rev, err := s.WaitPolicy(short, 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || rev != 1 {
		t.Fatalf("WaitPolicy on an unchanged policy = %d, %v; want 1, deadline exceeded", rev, err)
	}
	// A change wakes every waiter.
	const waiters = 50
	results := make(chan int64, waiters)
	var ready sync.WaitGroup
	for range waiters {
		ready.Add(1)
		go func() {
			ready.Done()
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			rev, err := s.WaitPolicy(wctx, 1)
			if err != nil {
				t.Errorf("WaitPolicy: %v", err)
			}
			results <- rev
		}()
	}
	ready.Wait()
	waitForWaiters(t, s, waiters)
	if _, err := s.SavePolicy(ctx, 1, policy.Policy{}, store.PolicyChange{Actor: "a", Action: "change"}); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if rev := <-results; rev != 2 {
			t.Fatalf("a waiter woke with revision %d, want 2", rev)
		}
	}
}

func audit(id string, at time.Time, kind api.AuditKind, effect policy.Effect, family, container, rule, msg string) api.Audit {
	return api.Audit{ID: id, Time: at, Kind: kind, Effect: effect, TaskFamily: family, TaskID: "task-" + family,
		Container: container, Rule: rule, Message: msg}
}

func testAudits(t *testing.T, s store.Store) {
	ctx := context.Background()
	batch := []api.Audit{
		audit("a1", base, api.AuditProcess, policy.EffectPrevent, "web", "app", "r1", "/bin/mkdir launched from /bin/dash is blocked"),
		audit("a2", base.Add(time.Second), api.AuditDNS, policy.EffectAlert, "web", "app", "r1", "DNS resolution of suspicious name yahoo.com"),
		audit("a3", base.Add(2*time.Second), api.AuditWAF, policy.EffectPrevent, "web", "app", "w1", "SQL injection detected"),
		audit("a4", base.Add(3*time.Second), api.AuditNetwork, policy.EffectAlert, "db", "pg", "r2", "Outbound connection to 10.0.0.1:5432"),
	}
	batch[2].WAF = &api.WAFDetail{EventID: "e1", Method: "GET", Path: "/q", Source: "1.2.3.4", Protections: []string{"sqli"}, RuleIDs: []int{942100}}
	n, err := s.InsertAudits(ctx, batch, base)
	if err != nil || n != 4 {
		t.Fatalf("InsertAudits = %d, %v; want 4", n, err)
	}
	// A retried batch with one new record stores only the new one, and
	// never overwrites a stored record.
	changed := batch[0]
	changed.Message = "rewritten"
	retry := []api.Audit{changed, batch[1], audit("a5", base.Add(4*time.Second), api.AuditProcess, policy.EffectAlert, "db", "pg", "r2", "/usr/bin/curl launched")}
	if n, err := s.InsertAudits(ctx, retry, base); err != nil || n != 1 {
		t.Fatalf("InsertAudits of a retried batch = %d, %v; want 1", n, err)
	}
	ids := func(q store.AuditQuery) []string {
		t.Helper()
		page, err := s.Audits(ctx, q)
		if err != nil {
			t.Fatalf("Audits(%+v): %v", q, err)
		}
		var out []string
		for _, a := range page.Audits {
			out = append(out, a.ID)
		}
		return out
	}
	runtimeKinds := []api.AuditKind{api.AuditProcess, api.AuditNetwork, api.AuditDNS, api.AuditDefender}
	tests := []struct {
		name string
		q    store.AuditQuery
		want string
	}{
		{"all, newest first", store.AuditQuery{}, "[a5 a4 a3 a2 a1]"},
		{"runtime kinds", store.AuditQuery{Kinds: runtimeKinds}, "[a5 a4 a2 a1]"},
		{"waf", store.AuditQuery{Kinds: []api.AuditKind{api.AuditWAF}}, "[a3]"},
		{"one kind", store.AuditQuery{Kinds: runtimeKinds, Kind: api.AuditDNS}, "[a2]"},
		{"from", store.AuditQuery{From: base.Add(2 * time.Second)}, "[a5 a4 a3]"},
		{"to (exclusive)", store.AuditQuery{To: base.Add(2 * time.Second)}, "[a2 a1]"},
		{"task family", store.AuditQuery{Task: "db"}, "[a5 a4]"},
		{"task id", store.AuditQuery{Task: "task-web"}, "[a3 a2 a1]"},
		{"container", store.AuditQuery{Container: "pg"}, "[a5 a4]"},
		{"rule", store.AuditQuery{Rule: "r1"}, "[a2 a1]"},
		{"effect", store.AuditQuery{Effect: policy.EffectPrevent}, "[a3 a1]"},
		{"text, any case", store.AuditQuery{Text: "YAHOO"}, "[a2]"},
		{"combined", store.AuditQuery{Kinds: runtimeKinds, Effect: policy.EffectAlert, Task: "web"}, "[a2]"},
		{"nothing", store.AuditQuery{Text: "no such words"}, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(ids(tt.q)); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	page, err := s.Audits(ctx, store.AuditQuery{Rule: "w1"})
	if err != nil || len(page.Audits) != 1 {
		t.Fatalf("Audits(rule w1) = %+v, %v", page, err)
	}
	a := page.Audits[0]
	if a.WAF == nil || a.WAF.RuleIDs[0] != 942100 || !a.Time.Equal(batch[2].Time) || a.TaskID != "task-web" {
		t.Errorf("stored audit came back as %+v, want the record posted", a)
	}
	if p, _ := s.Audits(ctx, store.AuditQuery{Kind: api.AuditProcess, Rule: "r1"}); len(p.Audits) != 1 || p.Audits[0].Message == "rewritten" {
		t.Errorf("a retried record replaced the stored one: %+v", p.Audits)
	}

	// Pagination walks every record once, in order.
	var walked []string
	q := store.AuditQuery{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		p, err := s.Audits(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Audits {
			walked = append(walked, a.ID)
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if got := fmt.Sprint(walked); got != "[a5 a4 a3 a2 a1]" {
		t.Errorf("pages of 2 walked %s", got)
	}
	if _, err := s.Audits(ctx, store.AuditQuery{Cursor: "garbage"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("Audits with a bad cursor: err = %v, want ErrBadCursor", err)
	}

	// Retention.
	n64, err := s.DeleteAuditsBefore(ctx, base.Add(2*time.Second))
	if err != nil || n64 != 2 {
		t.Fatalf("DeleteAuditsBefore = %d, %v; want 2", n64, err)
	}
	if got := fmt.Sprint(ids(store.AuditQuery{})); got != "[a5 a4 a3]" {
		t.Errorf("after retention: %s", got)
	}
}

// Records with the same time page by insertion order, none lost or repeated.
func testAuditsSameTime(t *testing.T, s store.Store) {
	ctx := context.Background()
	var batch []api.Audit
	for i := range 7 {
		batch = append(batch, audit(fmt.Sprintf("s%d", i), base, api.AuditProcess, policy.EffectAlert, "f", "c", "r", "m"))
	}
	if _, err := s.InsertAudits(ctx, batch, base); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	q := store.AuditQuery{Limit: 3}
	for {
		p, err := s.Audits(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Audits {
			if seen[a.ID] {
				t.Fatalf("record %s on two pages", a.ID)
			}
			seen[a.ID] = true
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(seen) != 7 {
		t.Fatalf("paging saw %d of 7 records", len(seen))
	}
}

func testScans(t *testing.T, s store.Store) {
	ctx := context.Background()
	mk := func(id string, at time.Time, image, result string) store.Scan {
		return store.Scan{ID: id, ReceivedAt: at, Publisher: "jenkins", Image: image, Digest: "sha256:" + id,
			TaskFamily: "web", Result: result,
			Summary: json.RawMessage(`{"blocked":1}`), Report: json.RawMessage(`{"schemaVersion":1,"id":"` + id + `"}`)}
	}
	scans := []store.Scan{
		mk("s1", base, "nginx:1", "passed"),
		mk("s2", base.Add(time.Second), "nginx:2", "blocked"),
		mk("s3", base.Add(2*time.Second), "nginx:1", "blocked"),
	}
	for _, sc := range scans {
		if err := s.SaveScan(ctx, sc); err != nil {
			t.Fatalf("SaveScan(%s): %v", sc.ID, err)
		}
	}
	if err := s.SaveScan(ctx, scans[0]); !errors.Is(err, store.ErrExists) {
		t.Fatalf("SaveScan of a taken ID: err = %v, want ErrExists", err)
	}
	list := func(q store.ScanQuery) (string, string) {
		t.Helper()
		p, err := s.Scans(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, sc := range p.Scans {
			if sc.Report != nil {
				t.Errorf("Scans returned the report of %s; the list is summaries only", sc.ID)
			}
			ids = append(ids, sc.ID)
		}
		return fmt.Sprint(ids), p.Next
	}
	if got, next := list(store.ScanQuery{}); got != "[s3 s2 s1]" || next != "" {
		t.Errorf("Scans = %s (next %q)", got, next)
	}
	if got, _ := list(store.ScanQuery{Image: "nginx:1"}); got != "[s3 s1]" {
		t.Errorf("Scans(image nginx:1) = %s", got)
	}
	if got, _ := list(store.ScanQuery{Result: "blocked"}); got != "[s3 s2]" {
		t.Errorf("Scans(result blocked) = %s", got)
	}
	got, next := list(store.ScanQuery{Limit: 2})
	if got != "[s3 s2]" || next == "" {
		t.Fatalf("first page of 2 = %s, next %q", got, next)
	}
	if got, next := list(store.ScanQuery{Limit: 2, Cursor: next}); got != "[s1]" || next != "" {
		t.Errorf("second page = %s, next %q", got, next)
	}
	sc, err := s.Scan(ctx, "s2")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Image != "nginx:2" || sc.Result != "blocked" || sc.Publisher != "jenkins" || !sc.ReceivedAt.Equal(base.Add(time.Second)) ||
		string(sc.Report) != `{"schemaVersion":1,"id":"s2"}` || string(sc.Summary) != `{"blocked":1}` || sc.Digest != "sha256:s2" {
		t.Errorf("Scan(s2) = %+v", sc)
	}
	if _, err := s.Scan(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Scan(nope): err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteScan(ctx, "s2"); err != nil {
		t.Fatalf("DeleteScan(s2): %v", err)
	}
	if _, err := s.Scan(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Scan(s2) after DeleteScan: err = %v, want ErrNotFound", err)
	}
	if got, _ := list(store.ScanQuery{}); got != "[s3 s1]" {
		t.Errorf("Scans after deleting s2 = %s, want [s3 s1]", got)
	}
	if err := s.DeleteScan(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteScan(s2): err = %v, want ErrNotFound", err)
	}
}

// A page of large records stops at MaxAuditPageBytes; the cursor goes on
// from there and every record is seen once.
func testAuditsPageBytes(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 700 // 700 x 16 KiB messages: about 11 MiB, over one page's bytes
	var batch []api.Audit
	for i := range n {
		batch = append(batch, audit(fmt.Sprintf("big-%03d", i), base.Add(time.Duration(i)*time.Millisecond), api.AuditDNS,
			policy.EffectAlert, "web", "app", "r", strings.Repeat("x", 16<<10)))
	}
	if got, err := s.InsertAudits(ctx, batch, base); err != nil || got != n {
		t.Fatalf("InsertAudits = %d, %v", got, err)
	}
	seen := map[string]bool{}
	pages := 0
	q := store.AuditQuery{Limit: store.MaxAuditPage}
	for {
		p, err := s.Audits(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		size := 0
		for _, a := range p.Audits {
			if seen[a.ID] {
				t.Fatalf("%s on two pages", a.ID)
			}
			seen[a.ID] = true
			size += len(a.Message)
		}
		if size > store.MaxAuditPageBytes {
			t.Fatalf("a page holds %d bytes of messages, over %d", size, store.MaxAuditPageBytes)
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(seen) != n || pages < 2 {
		t.Fatalf("saw %d of %d records in %d pages; want all, in at least 2 pages", len(seen), n, pages)
	}
}

// PolicyWaiters is implemented by stores that can say how many WaitPolicy
// calls are blocked, so a test knows its waiters are in place before it
// changes the policy instead of sleeping and hoping.
type PolicyWaiters interface {
	PolicyWaiters() int
}

// waitForWaiters polls until n waiters block in s (when s can tell).
func waitForWaiters(t *testing.T, s store.Store, n int) {
	t.Helper()
	pw, ok := s.(PolicyWaiters)
	if !ok {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for pw.PolicyWaiters() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d policy waiters are blocked after 20s", pw.PolicyWaiters(), n)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// A caller that knows a newer revision than the database holds (a restored
// database, another console's revision) is answered at once, not left
// waiting for the database to catch up.
func testWaitPolicyAhead(t *testing.T, s store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.SavePolicy(ctx, 0, policy.Policy{}, store.PolicyChange{Actor: "a", Action: "init"}); err != nil {
		t.Fatal(err)
	}
	rev, err := s.WaitPolicy(ctx, 7)
	if err != nil || rev != 1 {
		t.Fatalf("WaitPolicy(7) with revision 1 stored = %d, %v; want 1 at once", rev, err)
	}
}

// Text an engine cannot hold as is (NUL on PostgreSQL, invalid UTF-8) is
// stored replaced, visibly, and never fails the batch it came in.
func testAuditsUnsafeText(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := audit("nul", base, api.AuditWAF, policy.EffectPrevent, "web", "app", "waf", "GET /a\x00b \xff\xfe done")
	bad.WAF = &api.WAFDetail{EventID: "e\x00", Method: "GET", Path: "/a\x00b\xc3", Source: "10.0.0.1"}
	bad.Process = &api.ProcessDetail{Path: "/bin/sh", Argv: []string{"sh", "-c", "\x00\xff"}}
	ok := audit("ok", base.Add(time.Second), api.AuditDNS, policy.EffectAlert, "web", "app", "dns", "ordinary")
	n, err := s.InsertAudits(ctx, []api.Audit{bad, ok}, base)
	if err != nil || n != 2 {
		t.Fatalf("InsertAudits with NUL and invalid UTF-8 = %d, %v; want 2 stored", n, err)
	}
	p, err := s.Audits(ctx, store.AuditQuery{Text: "done"})
	if err != nil || len(p.Audits) != 1 {
		t.Fatalf("Audits(text done) = %+v, %v; want the record", p.Audits, err)
	}
	got := p.Audits[0]
	if want := "GET /a\u2400b \uFFFD done"; got.Message != want {
		t.Errorf("stored message = %q, want %q", got.Message, want)
	}
	if got.WAF == nil || got.WAF.Path != "/a\u2400b\uFFFD" || got.WAF.EventID != "e\u2400" {
		t.Errorf("stored WAF detail = %+v", got.WAF)
	}
	if got.Process == nil || fmt.Sprint(got.Process.Argv) != "[sh -c \u2400\uFFFD]" {
		t.Errorf("stored argv = %+v", got.Process)
	}
	// Posting it again is a duplicate, not a second record.
	if n, err := s.InsertAudits(ctx, []api.Audit{bad}, base); err != nil || n != 0 {
		t.Errorf("InsertAudits of the same record again = %d, %v; want 0", n, err)
	}
}
