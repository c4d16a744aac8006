package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the console's database, opened beside it to make it refuse writes

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// runShipper runs s until the test ends.
func runShipper(t *testing.T, s *Shipper) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shipper: %v", err)
		}
	})
}

// writeSpooled puts a batch file in the spool as an older defender (or a
// broken one) could have left it.
func writeSpooled(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func messages(audits []api.Audit) map[string]bool {
	m := map[string]bool{}
	for _, a := range audits {
		m[a.Message] = true
	}
	return m
}

func hasMessage(audits []api.Audit, prefix string) bool {
	for _, a := range audits {
		if strings.HasPrefix(a.Message, prefix) {
			return true
		}
	}
	return false
}

// A batch the console refuses (400) is moved aside, counted and reported,
// and the batches after it are delivered: it never blocks them.
func TestShipperSetsAsideRefusedBatch(t *testing.T) {
	cc, c := newConsole(t, &policy.Policy{})
	spool := t.TempDir()
	// The oldest batch is one the console answers 400 (no records).
	writeSpooled(t, spool, "00000000000000000001-000001.json", `{"audits":null}`)
	var logs testenv.SyncBuffer
	s := NewShipper(c, spool, slog.New(slog.NewTextHandler(&logs, nil)))
	s.FlushEvery = 10 * time.Millisecond
	s.Add(rec("after the refused batch"))
	runShipper(t, s)
	got := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool {
		return messages(a)["after the refused batch"] && hasMessage(a, "Audit batch of 0 audits set aside")
	})
	if n := s.SetAside(); n != 1 {
		t.Errorf("SetAside = %d, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(spool, "rejected", "00000000000000000001-000001.json")); err != nil {
		t.Errorf("the refused batch is not kept in spool/rejected: %v", err)
	}
	if !strings.Contains(logs.String(), "audit batch set aside") || !strings.Contains(logs.String(), "400") {
		t.Errorf("the log does not say the batch was set aside and why:\n%s", logs.String())
	}
	for _, a := range got {
		if strings.HasPrefix(a.Message, "Audit batch of") && (a.Kind != api.AuditDefender || !strings.Contains(a.Message, "400 Bad Request")) {
			t.Errorf("report = %+v", a)
		}
	}
}

// The case: a WAF audit of a request with a 20 KB path (and an SQL
// injection) is stored, cut, and the audits after it arrive too.
func TestShipperWAFLongPathDoesNotBlock(t *testing.T) {
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "app") })}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	defer app.Close()
	ext := testenv.FreePort(t)
	rule := policy.WAFRule{Name: "web", Scope: policy.Scope{Tasks: []string{testFamily}}, ExternalPort: ext,
		AppPort:     uint16(appLn.Addr().(*net.TCPAddr).Port),
		Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent}}
	cc, cons := newConsole(t, &policy.Policy{WAF: []policy.WAFRule{rule}})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Run(ctx, Options{SocketPath: filepath.Join(dir, "s.sock"), StateDir: filepath.Join(dir, "state"), Console: cons,
			PolicyWait: 2 * time.Second, TaskFamily: testFamily, WAFAddr: "127.0.0.1", Ready: ready,
			Shipper: func(s *Shipper) { s.FlushEvery = 20 * time.Millisecond }})
	}()
	<-ready
	base := "http://127.0.0.1:" + strconv.Itoa(int(ext))
	waitFor(t, func() bool {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	longPath := "/" + strings.Repeat("a", 20<<10)
	resp, err := http.Get(base + longPath + "?id=" + url.QueryEscape("1' OR '1'='1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the attack with a 20 KB path: %d, want 403", resp.StatusCode)
	}
	// Later attacks, with ordinary paths, arrive as well.
	for i := range 3 {
		resp, err := http.Get(base + fmt.Sprintf("/later-%d?id=", i) + url.QueryEscape("1' OR '1'='1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := cc.WaitAudits(30*time.Second, func(a []api.Audit) bool {
		n := 0
		for _, x := range a {
			if x.WAF != nil {
				n++
			}
		}
		return n >= 4
	})
	cancel()
	<-done
	var long, later int
	for _, a := range got {
		switch {
		case a.WAF == nil:
		case strings.HasPrefix(a.WAF.Path, "/aaaa"):
			long++
			if len(a.WAF.Path) > 17<<10 {
				t.Errorf("the 20 KB path was stored whole (%d bytes)", len(a.WAF.Path))
			}
		case strings.HasPrefix(a.WAF.Path, "/later-"):
			later++
		}
	}
	if long != 1 || later != 3 {
		t.Fatalf("stored %d audits of the long path and %d later ones; want 1 and 3", long, later)
	}
}

// postsAnswered reads from the console's metrics how many audit posts it
// answered with code.
func postsAnswered(t *testing.T, cc *consoletest.Console, code int) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, cc.URL+api.PathMetrics, nil)
	req.SetBasicAuth("admin", consoletest.AdminPassword)
	resp, err := cc.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "taskguard_console_http_requests_total{") && strings.Contains(line, `code="`+strconv.Itoa(code)+`"`) &&
			strings.Contains(line, `method="POST"`) && strings.Contains(line, "audit") {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += int(v)
		}
	}
	return n
}

// A credential the console refuses (401) is reported once and tried again
// only after AuthBackoff, not in a tight loop; the audits stay spooled and
// go once a good credential is in place.
func TestShipperCredentialRefused(t *testing.T) {
	cc, good := newConsole(t, &policy.Policy{})
	revoked := &Console{BaseURL: good.BaseURL, Token: "tg_agent_revoked", HTTP: good.HTTP}
	spool := t.TempDir()
	var logs testenv.SyncBuffer
	s := NewShipper(revoked, spool, slog.New(slog.NewTextHandler(&logs, nil)))
	s.FlushEvery, s.MinBackoff, s.AuthBackoff = 5*time.Millisecond, 5*time.Millisecond, time.Hour
	s.Add(rec("kept while the credential is refused"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, func() bool { return postsAnswered(t, cc, 401) >= 1 })
	// The shipper decides to wait AuthBackoff (its log says so)...
	waitFor(t, func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "audits not delivered") && strings.Contains(l, "retry_in=1h0m0s") {
				return true
			}
		}
		return false
	})
	// ...and keeps to it: new audits are spooled, flush after flush, without
	// a post. The loop spools, then delivers when due, one round after the
	// other; an audit added once the previous one is on disk is spooled in a
	// later round, so when it is on disk the earlier round, with whatever it
	// delivered, is over. No fixed wait.
	for i := range 3 {
		marker := fmt.Sprintf("spooled while refused %d", i)
		s.Add(rec(marker))
		waitFor(t, func() bool { return spoolHolds(spool, marker) })
	}
	if n := postsAnswered(t, cc, 401); n != 1 {
		t.Fatalf("the console answered %d posts with 401; want 1 (no retry before AuthBackoff)", n)
	}
	cancel()
	<-done
	if n := strings.Count(logs.String(), "refuses the agent credential"); n != 1 {
		t.Errorf("the refusal is logged %d times, want once:\n%s", n, logs.String())
	}
	// The replaced credential delivers what waited, with the report.
	s2 := NewShipper(good, spool, nil)
	s2.FlushEvery = 10 * time.Millisecond
	runShipper(t, s2)
	cc.WaitAudits(20*time.Second, func(a []api.Audit) bool {
		return messages(a)["kept while the credential is refused"] && hasMessage(a, "The console refused the defender's credential (401")
	})
}

// On 5xx the shipper backs off (exponentially, with jitter) instead of
// posting every flush; once the console stores again, everything arrives.
// The console's own SQLite file is made to refuse every audit (a trigger):
// the console answers 500.
func TestShipperBacksOffOnServerErrors(t *testing.T) {
	cc, c := newConsole(t, &policy.Policy{})
	db, err := sql.Open("sqlite", "file:"+cc.DBPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON audits BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	rl := &retryLog{}
	s := NewShipper(c, t.TempDir(), slog.New(rl))
	s.FlushEvery, s.MinBackoff, s.MaxBackoff = 5*time.Millisecond, 100*time.Millisecond, 400*time.Millisecond
	s.Add(rec("waits out the outage"))
	runShipper(t, s)
	// The shipper's own decisions, not a watch of the clock: each failed
	// round says how long it waits; the wait doubles from MinBackoff to
	// MaxBackoff (jittered between half of it and all of it), and the next
	// round comes no earlier (flushing every 5 ms would come at once).
	const rounds = 6
	waitFor(t, func() bool { return len(rl.rounds()) >= rounds })
	got := rl.rounds()[:rounds]
	backoff := time.Duration(0)
	for i, r := range got {
		backoff = min(max(2*backoff, s.MinBackoff), s.MaxBackoff)
		if r.wait < backoff/2 || r.wait > backoff {
			t.Errorf("round %d chose to wait %v; want between %v and %v", i, r.wait, backoff/2, backoff)
		}
		// The round's log comes just after it set its next time: allow 1 ms.
		if i > 0 && r.at.Sub(got[i-1].at) < got[i-1].wait-time.Millisecond {
			t.Errorf("round %d came %v after round %d, which chose to wait %v", i, r.at.Sub(got[i-1].at), i-1, got[i-1].wait)
		}
	}
	if n := postsAnswered(t, cc, 500); n < rounds {
		t.Errorf("%d posts answered 500 for %d failed rounds", n, rounds)
	}
	if _, err := db.Exec(`DROP TRIGGER refuse`); err != nil {
		t.Fatal(err)
	}
	cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return messages(a)["waits out the outage"] })
}

// A batch the console fails on (500) while later batches are stored is
// retried PoisonAfter rounds, then moved aside: it never blocks the rest.
// A proxy in front of the real console answers 500 for that batch (the
// real console, which takes records one by one, has no such batch).
func TestShipperSetsAsidePoisonBatch(t *testing.T) {
	cc, c := newConsole(t, &policy.Policy{})
	via := consoleBehind(t, cc, c, func(w http.ResponseWriter, body []byte) bool {
		if !bytes.Contains(body, []byte("crashes the console")) {
			return false
		}
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return true
	})
	s := NewShipper(via, t.TempDir(), nil)
	s.FlushEvery, s.MinBackoff = 10*time.Millisecond, 10*time.Millisecond
	s.Add(rec("crashes the console"))
	s.spool()
	runShipper(t, s)
	// One batch per round: each one stored after the poison batch failed
	// again counts against it.
	for i := range 5 {
		msg := fmt.Sprintf("later %d", i)
		s.Add(rec(msg))
		s.spool()
		cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return messages(a)[msg] })
	}
	got := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool {
		return messages(a)["later 4"] && hasMessage(a, "Audit batch of 1 audits set aside")
	})
	if messages(got)["crashes the console"] {
		t.Error("the poison record was stored")
	}
	if s.SetAside() != 1 {
		t.Errorf("SetAside = %d, want 1", s.SetAside())
	}
}

func TestJitter(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, time.Second, 30 * time.Second} {
		for range 100 {
			if j := jitter(d); j > d || j < d/2 {
				t.Fatalf("jitter(%v) = %v, want within [%v, %v]", d, j, d/2, d)
			}
		}
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[jitter(time.Second)] = true
	}
	if len(seen) < 10 {
		t.Errorf("jitter(1s) drew only %d distinct waits in 50", len(seen))
	}
}

// spoolHolds reports whether a batch in the spool directory holds an audit
// with the message.
func spoolHolds(dir, message string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		for _, a := range readBatch(filepath.Join(dir, e.Name())).Audits {
			if a.Message == message {
				return true
			}
		}
	}
	return false
}

// retryLog is a log handler that keeps the shipper's failed rounds: when
// each logged "audits not delivered" and the wait it chose (retry_in).
type retryLog struct {
	mu  sync.Mutex
	got []retryRound
}

type retryRound struct {
	at   time.Time
	wait time.Duration
}

func (h *retryLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *retryLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "audits not delivered") {
		return nil
	}
	round := retryRound{at: r.Time}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" {
			round.wait = a.Value.Duration()
		}
		return true
	})
	h.mu.Lock()
	h.got = append(h.got, round)
	h.mu.Unlock()
	return nil
}

func (h *retryLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *retryLog) WithGroup(string) slog.Handler      { return h }

func (h *retryLog) rounds() []retryRound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}
