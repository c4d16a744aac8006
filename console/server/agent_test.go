package server

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
)

func TestAgentPolicyScopeAndETag(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	rules := []policy.RuntimeRule{
		{Name: "db", Scope: policy.Scope{Tasks: []string{"db-*"}}},
		{Name: "web-nginx", Scope: policy.Scope{Tasks: []string{"web"}, Images: []string{"nginx*"}}},
		{Name: "everyone"},
	}
	if _, err := admin.SetRuntimeRules(ctx, rules, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddCIRule(ctx, policy.CIRule{Name: "ci"}); err != nil {
		t.Fatal(err)
	}
	web := e.agentClient("web")
	p, tag, modified, err := web.AgentPolicy(ctx, "", 0)
	if err != nil || !modified {
		t.Fatalf("AgentPolicy = %v, %v", modified, err)
	}
	if tag != `"2"` || p.Revision != 2 {
		t.Errorf("ETag %s, revision %d; want \"2\", 2", tag, p.Revision)
	}
	if names := ruleNames(p); names != "web-nginx everyone" || len(p.CI) != 0 {
		t.Errorf("the web family got rules %q and %d CI rules; want web-nginx everyone, no CI", names, len(p.CI))
	}
	// The defender still picks per container.
	if r := p.RuntimeFor(policy.Identity{TaskFamily: "web", Container: "app", Image: "redis"}); r == nil || r.Name != "everyone" {
		t.Errorf("RuntimeFor(redis) = %+v", r)
	}
	// With container and image, only what applies to that container.
	r := e.do("GET", api.PathAgentPolicy+"?container=app&image=redis:7", "bearer "+agentToken(t, e, "web"), "")
	var one policy.Policy
	if r.status != 200 || json.Unmarshal([]byte(r.body), &one) != nil || ruleNames(one) != "everyone" {
		t.Errorf("?container&image: %d %s", r.status, r.body)
	}
	db, _, _, err := e.agentClient("db-main").AgentPolicy(ctx, "", 0)
	if err != nil || ruleNames(db) != "db everyone" {
		t.Errorf("db-main got %q, %v", ruleNames(db), err)
	}

	// Unchanged: 304 at once without wait.
	if _, _, modified, err := web.AgentPolicy(ctx, tag, 0); err != nil || modified {
		t.Fatalf("If-None-Match of the current ETag: modified %v, %v; want 304", modified, err)
	}
	// With wait and no change: 304 after the wait.
	start := time.Now()
	if _, _, modified, err := web.AgentPolicy(ctx, tag, 400*time.Millisecond); err != nil || modified {
		t.Fatalf("long-poll without a change: modified %v, %v", modified, err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("the long-poll answered 304 after %v, before its wait", d)
	}
	// A stale ETag: 200 at once.
	if _, _, modified, err := web.AgentPolicy(ctx, `"1"`, 10*time.Second); err != nil || !modified {
		t.Fatalf("a stale ETag: modified %v, %v", modified, err)
	}
	if r := e.do("GET", api.PathAgentPolicy+"?wait=soon", "bearer "+agentToken(t, e, "web"), ""); r.status != 400 || !strings.Contains(r.body, "wait") {
		t.Errorf("?wait=soon: %d %s", r.status, r.body)
	}
	// Humans with read access may not act as a defender.
	if r := e.do("GET", api.PathAgentPolicy, basic(auth.RoleAuditor), ""); r.status != 403 {
		t.Errorf("auditor on the agent endpoint: %d, want 403", r.status)
	}
	// An agent credential reads nothing else.
	if r := e.do("GET", api.PathRuntimePolicy, "bearer "+agentToken(t, e, "web"), ""); r.status != 403 {
		t.Errorf("agent on the policy API: %d, want 403", r.status)
	}
}

func agentToken(t *testing.T, e *testEnv, family string) string {
	t.Helper()
	tok, err := e.auth.AgentToken(context.Background(), family)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ruleNames(p policy.Policy) string {
	var n []string
	for _, r := range p.Runtime {
		n = append(n, r.Name)
	}
	return strings.Join(n, " ")
}

// A change wakes every waiting defender at once with the new policy.
func TestAgentPolicyLongPollWakes(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	if _, err := admin.AddRuntimeRule(ctx, seedsRule); err != nil {
		t.Fatal(err)
	}
	const waiters = 20
	type result struct {
		p        policy.Policy
		modified bool
		d        time.Duration
		err      error
	}
	results := make(chan result, waiters)
	for i := range waiters {
		c := e.agentClient(fmt.Sprintf("family-%d", i%3))
		go func() {
			start := time.Now()
			p, _, modified, err := c.AgentPolicy(ctx, api.ETag(1), 30*time.Second)
			results <- result{p, modified, time.Since(start), err}
		}()
	}
	e.waitLongPolls(waiters)
	changed := time.Now()
	if _, err := admin.AddRuntimeRule(ctx, policy.RuntimeRule{Name: "new"}); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		r := <-results
		if r.err != nil || !r.modified || r.p.Revision != 2 || ruleNames(r.p) != "seeds new" {
			t.Fatalf("a waiting defender got %+v", r)
		}
	}
	if d := time.Since(changed); d > 10*time.Second {
		t.Errorf("the change took %v to reach the defenders", d)
	}
}

func auditFor(id string, kind api.AuditKind, effect policy.Effect, msg string) api.Audit {
	return api.Audit{ID: id, Time: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), TaskFamily: "claims-other-family",
		TaskID: "t1", Container: "app", Kind: kind, Effect: effect, Rule: "seeds", Message: msg}
}

func TestAuditIngestAndQuery(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	agent := e.agentClient("web")
	batch := api.AuditBatch{Audits: []api.Audit{
		auditFor("a1", api.AuditProcess, policy.EffectPrevent, "/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir test"),
		auditFor("a2", api.AuditDNS, policy.EffectPrevent, "DNS resolution of suspicious name yahoo.com"),
		auditFor("a3", api.AuditWAF, policy.EffectPrevent, "=cmd|' /C calc'!A0 SQL injection"),
	}}
	batch.Audits[1].Time = batch.Audits[1].Time.Add(time.Second)
	batch.Audits[2].Time = batch.Audits[2].Time.Add(2 * time.Second)
	batch.Audits[2].WAF = &api.WAFDetail{EventID: "e", Method: "GET", Path: "/q", Source: "10.0.0.9", Protections: []string{"sqli"}}
	res, err := agent.PostAudits(ctx, batch)
	if err != nil || !reflect.DeepEqual(res, api.AuditIngestResponse{Received: 3, Stored: 3}) {
		t.Fatalf("PostAudits = %+v, %v", res, err)
	}
	// The retry of a batch the defender did not see acknowledged.
	batch.Audits = append(batch.Audits, auditFor("a4", api.AuditNetwork, policy.EffectAlert, "Outbound connection to 203.0.113.5:443"))
	batch.Audits[3].Time = batch.Audits[3].Time.Add(3 * time.Second)
	res, err = agent.PostAudits(ctx, batch)
	if err != nil || !reflect.DeepEqual(res, api.AuditIngestResponse{Received: 4, Stored: 1, Duplicates: 3}) {
		t.Fatalf("PostAudits of a retried batch = %+v, %v", res, err)
	}

	auditor := e.apiClient(auth.RoleAuditor)
	page, err := auditor.RuntimeAudits(ctx, api.AuditQuery{})
	if err != nil || ids(page) != "a4 a2 a1" {
		t.Fatalf("runtime audits = %q, %v", ids(page), err)
	}
	for _, a := range page.Audits {
		if a.TaskFamily != "web" {
			t.Errorf("audit %s filed under family %q; the credential's family is web", a.ID, a.TaskFamily)
		}
	}
	fw, err := auditor.FirewallAudits(ctx, api.AuditQuery{})
	if err != nil || ids(fw) != "a3" || fw.Audits[0].WAF == nil || fw.Audits[0].WAF.Source != "10.0.0.9" {
		t.Fatalf("firewall audits = %+v, %v", fw, err)
	}
	filters := []struct {
		q    api.AuditQuery
		want string
	}{
		{api.AuditQuery{Kind: api.AuditDNS}, "a2"},
		{api.AuditQuery{Effect: policy.EffectAlert}, "a4"},
		{api.AuditQuery{Text: "MKDIR"}, "a1"},
		{api.AuditQuery{Task: "web", Container: "app", Rule: "seeds"}, "a4 a2 a1"},
		{api.AuditQuery{Task: "claims-other-family"}, ""},
		{api.AuditQuery{From: batch.Audits[1].Time, To: batch.Audits[3].Time}, "a2"},
	}
	for _, f := range filters {
		p, err := auditor.RuntimeAudits(ctx, f.q)
		if err != nil || ids(p) != f.want {
			t.Errorf("RuntimeAudits(%+v) = %q, %v; want %q", f.q, ids(p), err, f.want)
		}
	}
	// Pagination.
	p1, err := auditor.RuntimeAudits(ctx, api.AuditQuery{Limit: 2})
	if err != nil || ids(p1) != "a4 a2" || p1.Next == "" {
		t.Fatalf("page 1 = %q next %q, %v", ids(p1), p1.Next, err)
	}
	p2, err := auditor.RuntimeAudits(ctx, api.AuditQuery{Limit: 2, Cursor: p1.Next})
	if err != nil || ids(p2) != "a1" || p2.Next != "" {
		t.Fatalf("page 2 = %q next %q, %v", ids(p2), p2.Next, err)
	}
	// CSV export, with formula-looking text defused.
	r := e.do("GET", api.PathFirewallAudits+"?format=csv", basic(auth.RoleAuditor), "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %d %s", r.status, r.header.Get("Content-Type"))
	}
	recs, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil || len(recs) != 2 || recs[0][0] != "time" || recs[1][1] != "a3" || recs[1][10] != "'=cmd|' /C calc'!A0 SQL injection" || recs[1][18] != "10.0.0.9" {
		t.Fatalf("CSV = %q, %v", recs, err)
	}
	bad := []string{"?kind=waf", "?effect=block", "?from=yesterday", "?limit=0", "?cursor=zzz", "?format=xml", "?colour=red"}
	for _, q := range bad {
		if r := e.do("GET", api.PathRuntimeAudits+q, basic(auth.RoleAuditor), ""); r.status != 400 {
			t.Errorf("%s: %d, want 400", q, r.status)
		}
	}
	if r := e.do("GET", api.PathRuntimeAudits, "bearer "+agentToken(t, e, "web"), ""); r.status != 403 {
		t.Errorf("an agent reads audits: %d, want 403", r.status)
	}
}

func ids(p api.AuditPage) string {
	var s []string
	for _, a := range p.Audits {
		s = append(s, a.ID)
	}
	return strings.Join(s, " ")
}

// A batch that is not a batch is refused whole (400/413), naming the
// problem; nothing of it is stored.
func TestAuditIngestRefusesBadBatches(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tok := "bearer " + agentToken(t, e, "web")
	big := api.AuditBatch{}
	for i := range maxAuditBatch + 1 {
		big.Audits = append(big.Audits, api.Audit{ID: fmt.Sprint(i), Kind: api.AuditProcess})
	}
	bigBody, _ := json.Marshal(big)
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"empty", `{"audits":[]}`, 400, "empty"},
		{"null", `{"audits":null}`, 400, "empty"},
		{"not an object", `[]`, 400, "JSON object"},
		{"records not objects", `{"audits":"x"}`, 400, "audits"},
		{"too many", string(bigBody), 400, "at most 1000"},
		{"too large", `{"audits":[{"id":"x","kind":"dns","message":"` + strings.Repeat("a", auditBody) + `"}]}`, 413, "limit"},
		{"unknown field", `{"audits":[],"extra":1}`, 400, "extra"},
	}
	for _, tt := range tests {
		r := e.do("POST", api.PathAgentAudits, tok, tt.body)
		if r.status != tt.status || !strings.Contains(errorMessage(t, r.body), tt.want) {
			t.Errorf("%s: %d %s; want %d naming %q", tt.name, r.status, r.body, tt.status, tt.want)
		}
	}
	if r := e.do("POST", api.PathAgentAudits, basic(auth.RoleCI), `{"audits":[{"id":"x","kind":"dns"}]}`); r.status != http.StatusForbidden {
		t.Errorf("ci posts audits: %d, want 403", r.status)
	}
	if p, err := e.apiClient(auth.RoleAuditor).RuntimeAudits(context.Background(), api.AuditQuery{}); err != nil || len(p.Audits) != 0 {
		t.Errorf("after refused batches the console holds %q, %v; want nothing", ids(p), err)
	}
}

// TestAgentPolicyImageRules: a defender gets, in order, the image rules
// whose task scope matches its family (for their custom checks), whatever
// container and image it names; never another family's.
func TestAgentPolicyImageRules(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	custom := []policy.CustomCheck{{ID: "ACME-1", Title: "no debug", Severity: "HIGH", FileAbsent: "/opt/debug/*"}}
	for _, r := range []policy.ImageRule{
		{Name: "db", Scope: policy.Scope{Tasks: []string{"db-*"}}},
		{Name: "web-side", Scope: policy.Scope{Tasks: []string{"web"}, Containers: []string{"sidecar"}}},
		{Name: "web", Scope: policy.Scope{Tasks: []string{"web"}}, Compliance: policy.ComplianceRule{Custom: custom}},
	} {
		if _, err := admin.AddImageRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	names := func(p policy.Policy) string {
		var n []string
		for _, r := range p.Images {
			n = append(n, r.Name)
		}
		return strings.Join(n, " ")
	}
	p, _, _, err := e.agentClient("web").AgentPolicy(ctx, "", 0)
	if err != nil || names(p) != "web-side web" {
		t.Fatalf("web got image rules %q, %v; want web-side web", names(p), err)
	}
	if r := p.ImagesFor(policy.Identity{TaskFamily: "web", Container: "app", Image: "x"}); r == nil || len(r.Compliance.Custom) != 1 {
		t.Errorf("ImagesFor(app) = %+v", r)
	}
	r := e.do("GET", api.PathAgentPolicy+"?container=app&image=redis:7", "bearer "+agentToken(t, e, "web"), "")
	var one policy.Policy
	if r.status != 200 || json.Unmarshal([]byte(r.body), &one) != nil || names(one) != "web-side web" {
		t.Errorf("?container&image: %d %s", r.status, r.body)
	}
}

// waitLongPolls waits until n policy long-polls are waiting in the server, as
// its /metrics reports them, so that a test changes the policy only once every
// defender is really waiting.
func (e *testEnv) waitLongPolls(n int) {
	e.t.Helper()
	want := fmt.Sprintf("taskguard_console_policy_long_polls_waiting %d\n", n)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.do("GET", api.PathMetrics, "basic "+userOf(auth.RoleAdmin)+" "+passwords[auth.RoleAdmin], "")
		if r.status == http.StatusOK && strings.Contains(r.body, want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d long-polls never waited together (status %d)", n, r.status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
