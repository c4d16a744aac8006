package launcher

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// sidecarStub is a real socket server, as the sidecar runs it, that has no
// policy until the test gives one.
type sidecarStub struct {
	srv       *socket.Server
	path      string
	audits    chan api.Audit
	connected chan struct{}
}

// onMessage is a slog handler that calls fn with each record's message: the
// socket server's "launcher connected" is the test's signal.
type onMessage struct{ fn func(string) }

func (h onMessage) Enabled(context.Context, slog.Level) bool      { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error { h.fn(r.Message); return nil }
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h onMessage) WithGroup(string) slog.Handler                 { return h }

func startSidecarStub(t *testing.T) *sidecarStub {
	t.Helper()
	s := &sidecarStub{path: filepath.Join(t.TempDir(), "defender.sock"), audits: make(chan api.Audit, 16), connected: make(chan struct{})}
	var once sync.Once
	log := slog.New(onMessage{func(msg string) {
		if msg == "launcher connected" {
			once.Do(func() { close(s.connected) })
		}
	}})
	s.srv = socket.NewServer(func(a api.Audit) { s.audits <- a }, log)
	l, err := socket.Listen(s.path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// next returns the next audit the sidecar received, or fails after d.
func (s *sidecarStub) next(t *testing.T, d time.Duration) api.Audit {
	t.Helper()
	select {
	case a := <-s.audits:
		return a
	case <-time.After(d):
		t.Fatalf("the sidecar received no audit in %s", d)
		return api.Audit{}
	}
}

var seedsPolicy = &policy.Policy{Revision: 1, Runtime: []policy.RuntimeRule{{
	Name: "seeds", Scope: policy.Scope{Containers: []string{"app"}},
	Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}},
}}}

// TestNoPolicyInTime: a sidecar that has no policy. Fail-open (the default)
// starts the app and says so in the log and in a defender audit that reaches
// the sidecar; fail-closed does not start the app, exits with ErrNoPolicy
// and a message that says where to look, and audits it too.
func TestNoPolicyInTime(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		name := map[bool]string{false: "fail-open", true: "fail-closed"}[failClosed]
		t.Run(name, func(t *testing.T) {
			s := startSidecarStub(t)
			marker := filepath.Join(t.TempDir(), "ran")
			var logs testenv.SyncBuffer
			st, err := Run(context.Background(), []string{"/bin/sh", "-c", "echo > " + marker}, []string{"PATH=/bin:/usr/bin"}, Options{
				Identity:   policy.Identity{TaskFamily: "task", Container: "app"},
				SocketPath: s.path,
				PolicyWait: 200 * time.Millisecond,
				FailClosed: failClosed,
				Supervisor: "ptrace",
				Log:        slog.New(slog.NewTextHandler(&logs, nil)),
			})
			_, statErr := os.Stat(marker)
			a := s.next(t, 10*time.Second)
			logText := logs.String()
			if a.Kind != api.AuditDefender || a.Severity != "high" || a.Container != "app" || a.TaskFamily != "task" || a.ID == "" {
				t.Errorf("audit %+v, want a high-severity defender audit of container app", a)
			}
			if !failClosed {
				if err != nil || st.ExitCode() != 0 || statErr != nil {
					t.Fatalf("fail-open: status %+v, err %v, app ran: %v; want the app to run", st, err, statErr == nil)
				}
				if want := "Runtime protection is off for container app: no policy from the sidecar within 200ms; protection starts when one arrives; the app started unprotected (fail-open)"; a.Message != want {
					t.Errorf("audit message %q, want %q", a.Message, want)
				}
				if !strings.Contains(logText, "the app starts unprotected") || !strings.Contains(logText, "no policy from the sidecar within 200ms") {
					t.Errorf("log %q does not say the app starts unprotected and why", logText)
				}
				return
			}
			if !errors.Is(err, ErrNoPolicy) || !strings.Contains(err.Error(), "the app was not started") || !strings.Contains(err.Error(), "TASKGUARD_CONSOLE_CA_PEM") {
				t.Fatalf("fail-closed: err %v, want ErrNoPolicy saying the app was not started and where to look", err)
			}
			if statErr == nil {
				t.Fatal("fail-closed: the app ran")
			}
			if want := "Container app was not started: no policy from the sidecar within 200ms (fail-closed)"; a.Message != want {
				t.Errorf("audit message %q, want %q", a.Message, want)
			}
		})
	}
}

// TestFailClosedPolicyArrives: fail-closed waits for the first policy and
// starts the app when it arrives (here: once the launcher has connected).
func TestFailClosedPolicyArrives(t *testing.T) {
	s := startSidecarStub(t)
	go func() {
		<-s.connected
		s.srv.SetPolicy(seedsPolicy)
	}()
	marker := filepath.Join(t.TempDir(), "ran")
	st, err := Run(context.Background(), []string{"/bin/sh", "-c", "echo > " + marker}, []string{"PATH=/bin:/usr/bin"}, Options{
		Identity:   policy.Identity{TaskFamily: "task", Container: "app"},
		SocketPath: s.path,
		FailClosed: true,
		Supervisor: "ptrace",
	})
	_, statErr := os.Stat(marker)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		// No supervision here: fail-closed must still refuse.
		if !errors.Is(err, ErrProtectionOff) || statErr == nil {
			t.Fatalf("err %v, app ran %v: want ErrProtectionOff and no app where supervision is unsupported", err, statErr == nil)
		}
		return
	}
	if err != nil || st.ExitCode() != 0 || statErr != nil {
		t.Fatalf("err %v, status %+v, app ran %v: want the app started under the policy that arrived", err, st, statErr == nil)
	}
}
