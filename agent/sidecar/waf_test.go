package sidecar

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// seedsSQLi is the seeds' CNAF test request body (not valid JSON).
const seedsSQLi = `{"-1+union+all+select+1,group_concat(user,0x3a,file_priv),3,4+from+mysql.user--"}`

func post(t *testing.T, port uint16, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(int(port))+"/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWAFFollowsPolicy: the sidecar starts a WAF proxy for the console's WAF
// rule of its task, blocks the seeds' SQL injection with an audit that
// reaches the console, forwards benign requests, and stops the proxy when
// the rule goes away.
// runWAFSidecar runs the sidecar of the task family twistlock-fargate-task
// against cons, with its WAF on loopback, and returns once its WAF listens
// on ext. stop ends it and fails t if it ended with an error. dir holds
// its socket and state.
func runWAFSidecar(t *testing.T, cons *Console, ext uint16) (dir string, stop func()) {
	t.Helper()
	dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Run(ctx, Options{SocketPath: filepath.Join(dir, "s.sock"), StateDir: filepath.Join(dir, "state"), Console: cons,
			PolicyWait: 2 * time.Second, TaskFamily: "twistlock-fargate-task", WAFAddr: "127.0.0.1", Ready: ready})
	}()
	<-ready
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(ext)))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return dir, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Fatalf("sidecar: %v", err)
		}
	}
}

func TestWAFFollowsPolicy(t *testing.T) {
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello from the app") })}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	defer app.Close()
	appPort := uint16(appLn.Addr().(*net.TCPAddr).Port)
	ext := testenv.FreePort(t)

	rule := policy.WAFRule{Name: "web", Scope: policy.Scope{Tasks: []string{"twistlock-*"}}, ExternalPort: ext, AppPort: appPort,
		Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent}}
	other := rule
	other.Name, other.Scope.Tasks = "other", []string{"shop-*"}
	other.ExternalPort = testenv.FreePort(t)
	cc, cons := newConsole(t, &policy.Policy{WAF: []policy.WAFRule{rule, other}})

	_, stop := runWAFSidecar(t, cons, ext)

	if code, body := post(t, ext, seedsSQLi); code != http.StatusForbidden || !strings.Contains(body, "blocked by taskguard") {
		t.Fatalf("seeds' SQLi: %d %q", code, body)
	}
	if code, body := post(t, ext, `{"q": "shoes"}`); code != http.StatusOK || body != "hello from the app" {
		t.Fatalf("benign: %d %q", code, body)
	}
	audits := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return len(a) > 0 })
	if len(audits) != 1 || audits[0].Kind != api.AuditWAF || audits[0].WAF == nil || audits[0].TaskFamily != "twistlock-fargate-task" ||
		audits[0].Effect != policy.EffectPrevent || !strings.Contains(strings.Join(audits[0].WAF.Protections, ","), "sqli") {
		t.Fatalf("audits = %+v", audits)
	}
	// The other task's rule does not listen here.
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(other.ExternalPort))); err == nil {
		c.Close()
		t.Error("a WAF rule of another task family is listening")
	}

	// The rule switches to alert: the attack now reaches the app.
	alerting := rule
	alerting.Protections = map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectAlert}
	setPolicy(t, cc, &policy.Policy{WAF: []policy.WAFRule{alerting}})
	waitFor(t, func() bool { code, _ := post(t, ext, seedsSQLi); return code == http.StatusOK })

	// The rule is removed: the proxy stops listening.
	setPolicy(t, cc, &policy.Policy{})
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(ext)))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	stop()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWAFAggregatedAuditsShippedAtShutdown: under a flood over the rate
// limit, the console gets the first refusal's audit at once and, when the
// sidecar stops, the count of the others: the WAF proxies stop before the
// audit shipper's final delivery, so nothing is left in the spool.
func TestWAFAggregatedAuditsShippedAtShutdown(t *testing.T) {
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello from the app") })}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	defer app.Close()
	ext := testenv.FreePort(t)
	rule := policy.WAFRule{Name: "web", Scope: policy.Scope{Tasks: []string{"twistlock-*"}}, ExternalPort: ext, AppPort: uint16(appLn.Addr().(*net.TCPAddr).Port),
		Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent},
		RateLimit:   &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: 1, PeriodSeconds: 3600}}
	cc, cons := newConsole(t, &policy.Policy{WAF: []policy.WAFRule{rule}})
	dir, stop := runWAFSidecar(t, cons, ext)
	codes := map[int]int{}
	for range 10 {
		code, _ := post(t, ext, `{"q": "shoes"}`)
		codes[code]++
	}
	if codes[http.StatusOK] != 1 || codes[http.StatusTooManyRequests] != 9 {
		t.Fatalf("statuses %v, want 1 x 200 and 9 x 429", codes)
	}
	first := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return len(a) > 0 })
	stop()
	all := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool { return len(a) >= 2 })
	if len(first) != 1 || len(all) != 2 || !strings.Contains(all[1].Message, "rate limit blocked 8 more requests from 127.0.0.1") {
		t.Fatalf("audits at the console: first %d, then %+v; want the first refusal, then a count of 8 at shutdown", len(first), all)
	}
	if spooled, _ := filepath.Glob(filepath.Join(dir, "state", "spool", "*.json")); len(spooled) != 0 {
		t.Fatalf("audits left in the spool: %v", spooled)
	}
}
