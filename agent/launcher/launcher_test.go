package launcher

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "app")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, argv0 string
		env         []string
		want        string
		wantErr     bool
	}{
		{"in PATH", "app", []string{"PATH=/nonexistent:" + dir}, exe, false},
		{"absolute", exe, nil, exe, false},
		{"not executable", "data", []string{"PATH=" + dir}, "", true},
		{"missing", "nosuch", []string{"PATH=" + dir}, "", true},
		{"missing absolute", "/nonexistent/app", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPath(tt.argv0, tt.env)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("lookPath = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Errorf("error %v is not ErrNotFound", err)
			}
		})
	}
}

func TestLoadPolicyRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"runtime":[{"name":"r","processes":{"effect":"block"}}]}`), 0o600)
	notJSON := filepath.Join(dir, "x.json")
	_ = os.WriteFile(notJSON, []byte(`runtime: []`), 0o600)
	for _, p := range []string{bad, notJSON, filepath.Join(dir, "missing.json")} {
		if _, err := LoadPolicy(p); err == nil || !strings.Contains(err.Error(), "policy") {
			t.Errorf("LoadPolicy(%s) = %v, want an error naming the policy", p, err)
		}
	}
	if _, err := Run(context.Background(), nil, nil, Options{}); err == nil {
		t.Error("Run with no argv did not fail")
	}
}

func TestHandlerDecisions(t *testing.T) {
	h := &handler{id: policy.Identity{Container: "c"}, queue: make(chan api.Audit, 16), log: slogDiscard()}
	h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{
		Name:      "r",
		Scope:     policy.Scope{Containers: []string{"c"}},
		Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}},
		Network:   policy.NetworkPolicy{Effect: policy.EffectAlert, DeniedDomains: []string{"yahoo.com"}},
	}}})
	ev := supervise.ExecEvent{PID: 7, Path: "/bin/mkdir", Resolved: "/usr/bin/mkdir", Parent: "/bin/dash", Argv: []string{"mkdir", "test"}}
	if h.Exec(ev) != supervise.Deny {
		t.Fatal("mkdir not denied")
	}
	h.Enforced(ev.PID, supervise.Refused, nil) // the supervisor's report after each Deny
	ev.Path = "/usr/bin/mkdir"                 // the shell's retry with the next PATH entry
	if h.Exec(ev) != supervise.Deny {
		t.Fatal("retry not denied")
	}
	h.Enforced(ev.PID, supervise.Refused, nil)
	if h.Exec(supervise.ExecEvent{PID: 7, Path: "/bin/ls", Resolved: "/usr/bin/ls", Argv: []string{"ls"}}) != supervise.Allow {
		t.Fatal("ls denied")
	}
	if h.DNS(supervise.DNSEvent{Caller: supervise.Caller{PID: 7}, Names: []string{"api.yahoo.com"}}) != supervise.Allow {
		t.Fatal("alert-only DNS was denied")
	}
	close(h.queue)
	var msgs []string
	for a := range h.queue {
		if a.Container != "c" || a.ID == "" || a.Rule != "r" {
			t.Errorf("audit %+v lacks container, ID or rule", a)
		}
		msgs = append(msgs, a.Message)
	}
	want := []string{
		"/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir test",
		"DNS resolution of suspicious name api.yahoo.com",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("audits:\n%s\nwant (one per refused command):\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}

	// Out of scope: nothing is enforced.
	other := &handler{id: policy.Identity{Container: "other"}, queue: make(chan api.Audit, 1)}
	other.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{Name: "r", Scope: policy.Scope{Containers: []string{"c"}},
		Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}}}}})
	if other.Exec(ev) != supervise.Allow {
		t.Error("a rule scoped to another container was enforced")
	}
}

// TestProtectedWithoutSidecar: a protected container whose sidecar never
// answers does not start under fail-closed.
func TestProtectedWithoutSidecar(t *testing.T) {
	start := time.Now()
	_, err := Run(context.Background(), []string{"/bin/true"}, nil, Options{
		Identity:   policy.Identity{Container: "app"},
		SocketPath: filepath.Join(t.TempDir(), "none.sock"),
		PolicyWait: 300 * time.Millisecond,
		FailClosed: true,
	})
	if !errors.Is(err, ErrProtectionOff) {
		t.Fatalf("error %v, want ErrProtectionOff", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("gave up before waiting for the sidecar to start")
	}
}

// TestHandlerWordsWhatHappened: the audit of a prevented call waits for the
// supervisor's outcome and says "killed" (never "blocked") when the call
// could not be refused; the real path and the called name are both kept.
func TestHandlerWordsWhatHappened(t *testing.T) {
	rule := policy.RuntimeRule{
		Name:      "r",
		Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}},
		Network:   policy.NetworkPolicy{Effect: policy.EffectPrevent, DeniedDomains: []string{"yahoo.com"}},
	}
	ev := supervise.ExecEvent{PID: 9, Path: "/bin/mkdir", Resolved: "/usr/bin/mkdir", Parent: "/bin/dash", Argv: []string{"mkdir", "x"}}
	tests := []struct {
		name    string
		outcome supervise.Outcome
		want    string
		effect  policy.Effect
	}{
		{"refused", supervise.Refused,
			"/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir x", policy.EffectPrevent},
		{"killed", supervise.Killed,
			"/bin/mkdir launched from /bin/dash and is explicitly denied in the runtime rule; the call could not be refused, so the process was killed before it ran. Full command: mkdir x", policy.EffectPrevent},
		{"gone", supervise.Gone,
			"/bin/mkdir launched from /bin/dash and is explicitly denied in the runtime rule; the process ended before the call was refused; the call did not run. Full command: mkdir x", policy.EffectPrevent},
		{"interrupted", supervise.Interrupted,
			"/bin/mkdir launched from /bin/dash and is explicitly denied in the runtime rule; the call was refused, but a signal interrupted it before the answer and it was not made again; it did not run. Full command: mkdir x", policy.EffectPrevent},
		{"unenforced", supervise.Unenforced,
			"/bin/mkdir launched from /bin/dash and is explicitly denied in the runtime rule; the call could be neither refused nor its process killed, so it may have run. Full command: mkdir x", policy.EffectAlert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &handler{queue: make(chan api.Audit, 4)}
			h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{rule}})
			h.log = slogDiscard()
			if h.Exec(ev) != supervise.Deny {
				t.Fatal("mkdir not denied")
			}
			if len(h.queue) != 0 {
				t.Fatal("the audit went out before the supervisor said what happened")
			}
			h.Enforced(ev.PID, tt.outcome, errors.New("cause"))
			if len(h.queue) != 1 {
				t.Fatalf("%d audits, want 1", len(h.queue))
			}
			a := <-h.queue
			if a.Message != tt.want || a.Effect != tt.effect {
				t.Errorf("audit %q (effect %s)\nwant  %q (effect %s)", a.Message, a.Effect, tt.want, tt.effect)
			}
			if a.Process.Path != "/usr/bin/mkdir" || a.Process.CalledAs != "/bin/mkdir" {
				t.Errorf("process detail %+v: want path /usr/bin/mkdir called as /bin/mkdir", a.Process)
			}
		})
	}
	// A call that could not be read at all: the process was killed, and a
	// defender audit says so.
	h := &handler{queue: make(chan api.Audit, 4), log: slogDiscard()}
	h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{rule}})
	h.Enforced(11, supervise.Killed, errors.New("no such process"))
	if a := <-h.queue; a.Kind != api.AuditDefender || !strings.Contains(a.Message, "killed") {
		t.Errorf("audit %+v, want a defender audit saying the process was killed", a)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestVerdictCacheFollowsPolicy: a cached verdict is reused only while the
// rule is the same; a new policy revision decides afresh.
func TestVerdictCacheFollowsPolicy(t *testing.T) {
	h := &handler{queue: make(chan api.Audit, 16), log: slogDiscard()}
	deny := func(rev int64, denied []string, cidr string) *policy.Policy {
		return &policy.Policy{Revision: rev, Runtime: []policy.RuntimeRule{{Name: "r",
			Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: denied},
			Network:   policy.NetworkPolicy{Effect: policy.EffectPrevent, DeniedOutbound: []policy.Destination{{CIDR: cidr}}}}}}
	}
	ev := supervise.ExecEvent{PID: 3, Path: "/bin/mkdir", Resolved: "/usr/bin/mkdir", Argv: []string{"mkdir"}}
	conn := supervise.ConnectEvent{Caller: supervise.Caller{PID: 3, Exe: "/bin/wget"}, Addr: netip.MustParseAddrPort("10.0.0.1:80")}
	h.setPolicy(deny(1, []string{"ls"}, "192.0.2.0/24"))
	for range 2 { // the second answer comes from the cache
		if h.Exec(ev) != supervise.Allow || h.Connect(conn) != supervise.Allow {
			t.Fatal("revision 1 denies neither mkdir nor 10.0.0.1")
		}
	}
	h.setPolicy(deny(2, []string{"mkdir"}, "10.0.0.0/8"))
	if h.Exec(ev) != supervise.Deny || h.Connect(conn) != supervise.Deny {
		t.Fatal("revision 2 was answered from the cache of revision 1")
	}
	h.Enforced(3, supervise.Refused, nil)
	h.setPolicy(deny(3, nil, "192.0.2.0/24"))
	if h.Exec(ev) != supervise.Allow || h.Connect(conn) != supervise.Allow {
		t.Fatal("revision 3 was answered from the cache of revision 2")
	}
}

// TestHandlerForeign: a 32-bit call the supervisor cannot decode is refused
// when the rule prevents anything, audited once the supervisor says what
// happened, and allowed (with no audit) when the rule only alerts.
func TestHandlerForeign(t *testing.T) {
	tests := []struct {
		name    string
		effect  policy.Effect
		outcome supervise.Outcome
		verdict supervise.Verdict
		want    string
	}{
		{"refused", policy.EffectPrevent, supervise.Refused, supervise.Deny,
			"32-bit system call 11 refused: it cannot be checked against the runtime rule"},
		{"killed", policy.EffectPrevent, supervise.Killed, supervise.Deny,
			"32-bit system call 11 cannot be checked against the runtime rule; it could not be refused, so the process was killed before it ran"},
		{"alert only", policy.EffectAlert, supervise.Refused, supervise.Allow, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &handler{queue: make(chan api.Audit, 4), log: slogDiscard()}
			h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{Name: "r",
				Processes: policy.ProcessPolicy{Effect: tt.effect, Denied: []string{"mkdir"}},
				Network:   policy.NetworkPolicy{Effect: tt.effect, DeniedDomains: []string{"yahoo.com"}}}}})
			if v := h.Foreign(5, 11); v != tt.verdict {
				t.Fatalf("verdict %v, want %v", v, tt.verdict)
			}
			if len(h.queue) != 0 {
				t.Fatal("the audit went out before the supervisor said what happened")
			}
			h.Enforced(5, tt.outcome, nil)
			if tt.want == "" {
				if len(h.queue) != 0 {
					t.Errorf("an alert-only rule audited an allowed 32-bit call: %+v", <-h.queue)
				}
				return
			}
			if len(h.queue) != 1 {
				t.Fatalf("%d audits, want 1", len(h.queue))
			}
			if a := <-h.queue; a.Message != tt.want || a.Rule != "r" || a.Process == nil || a.Process.PID != 5 {
				t.Errorf("audit %+v\nwant message %q, rule r, pid 5", a, tt.want)
			}
		})
	}
}
