package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

func rec(msg string) api.Audit {
	return api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditDNS, Effect: policy.EffectPrevent, Message: msg}
}

// newConsole starts a real console (consoletest) holding p's runtime and
// WAF rules, and returns it with the sidecar's view of it for the task
// family "twistlock-fargate-task".
func newConsole(t *testing.T, p *policy.Policy) (*consoletest.Console, *Console) {
	t.Helper()
	cc := consoletest.Start(t)
	setPolicy(t, cc, p)
	return cc, &Console{BaseURL: cc.URL, Token: cc.AgentToken(testFamily), HTTP: cc.HTTP}
}

const testFamily = "twistlock-fargate-task"

// consoleBehind returns the sidecar's view of the real console cc, with
// c's token, through a proxy on loopback that shows each request's body to
// front first: front answers the request itself (and returns true), or
// returns false and the request goes on to the console, body and all. The
// proxy closes when the test ends.
func consoleBehind(t *testing.T, cc *consoletest.Console, c *Console, front func(w http.ResponseWriter, body []byte) (answered bool)) *Console {
	t.Helper()
	target, err := url.Parse(cc.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = cc.HTTP.Transport
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if front(w, body) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	return &Console{BaseURL: proxy.URL, Token: c.Token, HTTP: proxy.Client()}
}

// setPolicy replaces the console's runtime and WAF rules with p's, through
// the admin API; every call makes a new revision.
func setPolicy(t *testing.T, cc *consoletest.Console, p *policy.Policy) {
	t.Helper()
	ctx := context.Background()
	admin := cc.Admin()
	if _, err := admin.SetRuntimeRules(ctx, nonNil(p.Runtime), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetWAFRules(ctx, nonNil(p.WAF), 0); err != nil {
		t.Fatal(err)
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// countLines counts the log lines holding s.
func countLines(log *testenv.SyncBuffer, s string) int { return strings.Count(log.String(), s) }

// TestShipperRetriesWithoutDuplicates: posts that fail (the console is
// down) are retried from the spool with the same IDs, repeats are
// aggregated, nothing is lost or stored twice.
func TestShipperRetriesWithoutDuplicates(t *testing.T) {
	cc, c := newConsole(t, &policy.Policy{})
	cc.Stop()
	var logs testenv.SyncBuffer
	s := NewShipper(c, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	s.FlushEvery, s.MinBackoff, s.MaxBackoff = 20*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	for range 3 {
		s.Add(rec("DNS resolution of suspicious name yahoo.com"))
	}
	s.Add(rec("DNS resolution of suspicious name bing.com"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, func() bool { return countLines(&logs, "audits not delivered") >= 2 })
	cc.Restart()
	cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return len(a) >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := cc.Audits()
	if len(got) != 2 {
		t.Fatalf("console holds %d records, want 2 (aggregated): %+v", len(got), got)
	}
	counts := map[string]int{}
	for _, a := range got {
		counts[a.Message] = a.Count
	}
	if counts["DNS resolution of suspicious name yahoo.com"] != 3 || counts["DNS resolution of suspicious name bing.com"] != 1 {
		t.Errorf("counts %v, want 3 and 1", counts)
	}
	if left := s.batches(); len(left) != 0 {
		t.Errorf("spool keeps %v after delivery", left)
	}
}

// TestShipperSpoolsWhileConsoleAway: batches wait on disk across a restart
// and are delivered once the console is back; a full spool is reported.
func TestShipperSpoolsWhileConsoleAway(t *testing.T) {
	spool := t.TempDir()
	down := &Console{BaseURL: "http://127.0.0.1:1", Token: "tok", HTTP: &http.Client{Timeout: time.Second}}
	s := NewShipper(down, spool, nil)
	s.MaxSpool = 2
	for _, m := range []string{"one", "two", "three"} {
		s.Add(rec(m))
		s.spool() // one batch each, as successive flushes make them
		if err := s.deliver(context.Background()); err == nil {
			t.Fatal("delivery to a console that is down succeeded")
		}
	}
	if files := s.batches(); len(files) != 2 {
		t.Fatalf("spool holds %d batches, want MaxSpool 2", len(files))
	}

	done := make(chan error)
	cc, up := newConsole(t, &policy.Policy{})
	s2 := NewShipper(up, spool, nil)
	s2.FlushEvery = 10 * time.Millisecond
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { done <- s2.Run(ctx2) }()
	got := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return len(a) >= 3 })
	cancel2()
	<-done
	msgs := map[string]bool{}
	for _, a := range got {
		msgs[a.Message] = true
	}
	// MaxSpool 2: the oldest batch ("one") was dropped and that is reported.
	if !msgs["two"] || !msgs["three"] || !msgs["Audit spool full: 1 audits were dropped"] || msgs["one"] {
		t.Errorf("delivered %v, want two, three and the spool-full report", msgs)
	}
}

// TestPollPolicy: the sidecar long-polls, sends If-None-Match, stores the
// last good policy and pushes changes to launchers over the socket.
func TestPollPolicy(t *testing.T) {
	rule := policy.RuntimeRule{Name: "r", Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}}}
	cc, c := newConsole(t, &policy.Policy{Runtime: []policy.RuntimeRule{rule}})
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() {
		done <- Run(ctx, Options{SocketPath: sock, StateDir: filepath.Join(dir, "state"), Console: c, PolicyWait: 2 * time.Second, Ready: ready})
	}()
	<-ready
	cl, err := socket.Dial(sock, policy.Identity{Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	revs := make(chan int64, 10)
	go func() { _ = cl.Policies(func(p *policy.Policy) { revs <- p.Revision }) }()
	wait := func(want int64) {
		t.Helper()
		for {
			select {
			case r := <-revs:
				if r == want {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("revision %d never reached the launcher", want)
			}
		}
	}
	wait(2) // the console's revisions: 1 the runtime rules, 2 the (empty) WAF rules
	setPolicy(t, cc, &policy.Policy{})
	wait(4)
	b, err := os.ReadFile(filepath.Join(dir, "state", "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var stored policy.Policy
	if err := json.Unmarshal(b, &stored); err != nil || stored.Revision != 4 {
		t.Errorf("last good policy on disk: revision %d, %v; want 4", stored.Revision, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestConsolePolicyNotModified checks the client side of the ETag contract.
func TestConsolePolicyNotModified(t *testing.T) {
	_, c := newConsole(t, &policy.Policy{})
	p, tag, err := c.Policy(context.Background(), "", 0)
	if err != nil || p == nil || p.Revision != 2 || tag != `"2"` {
		t.Fatalf("first fetch: %+v %q %v", p, tag, err)
	}
	p, tag2, err := c.Policy(context.Background(), tag, 100*time.Millisecond)
	if err != nil || p != nil || tag2 != tag {
		t.Fatalf("unchanged fetch: %+v %q %v; want 304", p, tag2, err)
	}
	bad := &Console{BaseURL: c.BaseURL, Token: "wrong", HTTP: c.HTTP}
	if _, _, err := bad.Policy(context.Background(), "", 0); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("a wrong token: %v, want a 401 StatusError", err)
	}
}

// TestConsoleInvalidPolicyKept: a policy that does not validate never
// replaces the good one. The real console validates every change, so only
// a broken or hostile console could send one: a handler stands in for it.
func TestConsoleInvalidPolicyKept(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", `"3"`)
		io.WriteString(w, `{"revision":3,"runtime":[{"name":"","processes":{"effect":"block"}}]}`)
	}))
	defer srv.Close()
	c := &Console{BaseURL: srv.URL, Token: "t", HTTP: srv.Client()}
	p, tag, err := c.Policy(context.Background(), `"2"`, 0)
	if err == nil || p != nil || tag != `"2"` || !strings.Contains(err.Error(), "invalid policy") {
		t.Fatalf("Policy = %+v, %q, %v; want the invalid policy refused and the old ETag kept", p, tag, err)
	}
}

// TestStandalone: with a policy file and no console the sidecar serves the
// file and writes audits as JSON lines.
func TestStandalone(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(pf, []byte(`{"revision": 4, "runtime": [{"name": "r", "processes": {"effect": "alert", "denied": ["nc"]}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	sock := filepath.Join(dir, "s.sock")
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, Options{SocketPath: sock, StateDir: filepath.Join(dir, "state"), PolicyFile: pf, Audits: audit.NewJSONLines(&out), Ready: ready})
	}()
	<-ready
	cl, err := socket.Dial(sock, policy.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	revs := make(chan int64, 1)
	go func() { _ = cl.Policies(func(p *policy.Policy) { revs <- p.Revision }) }()
	select {
	case r := <-revs:
		if r != 4 {
			t.Fatalf("revision %d, want the file's 4", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no policy from the file")
	}
	if err := cl.Send(context.Background(), []api.Audit{rec("standalone audit")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "standalone audit") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	var a api.Audit
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &a); err != nil || a.Message != "standalone audit" || a.Count != 1 {
		t.Errorf("JSON lines output %q (%v)", out.String(), err)
	}

	if err := Run(context.Background(), Options{SocketPath: sock, StateDir: dir}); err == nil {
		t.Error("a sidecar with neither console nor policy file started")
	}
}
