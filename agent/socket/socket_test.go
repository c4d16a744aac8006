package socket

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

func startServer(t *testing.T) (*Server, string, func() []api.Audit) {
	t.Helper()
	var mu sync.Mutex
	var got []api.Audit
	srv := NewServer(func(a api.Audit) {
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}, slog.New(slog.DiscardHandler))
	path := filepath.Join(t.TempDir(), "d.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, path, func() []api.Audit {
		mu.Lock()
		defer mu.Unlock()
		return append([]api.Audit(nil), got...)
	}
}

func TestPolicyAndAudits(t *testing.T) {
	srv, path, audits := startServer(t)
	srv.SetPolicy(&policy.Policy{Revision: 1})
	cl, err := Dial(path, policy.Identity{Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	revs := make(chan int64, 4)
	go func() { _ = cl.Policies(func(p *policy.Policy) { revs <- p.Revision }) }()
	if r := <-revs; r != 1 {
		t.Fatalf("first policy revision %d, want the current 1", r)
	}
	srv.SetPolicy(&policy.Policy{Revision: 2})
	select {
	case r := <-revs:
		if r != 2 {
			t.Fatalf("pushed revision %d, want 2", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("policy change was not pushed")
	}
	if err := cl.Send(context.Background(), []api.Audit{{ID: "a", Message: "m1"}, {ID: "b", Message: "m2"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(audits()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := audits(); len(got) != 2 || got[0].Message != "m1" || got[1].Message != "m2" {
		t.Errorf("server got %+v", got)
	}
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	_, path, audits := startServer(t)
	tests := []struct {
		name string
		send string
	}{
		{"not json", "hello\n"},
		{"oversized", strings.Repeat("x", maxFrame+10) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() { _, _ = c.Write([]byte(tt.send)) }()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var b [1]byte
			if _, err := c.Read(b[:]); err == nil {
				t.Fatal("server kept talking after a bad frame")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("server neither answered nor closed after a bad frame")
			}
		})
	}
	if len(audits()) != 0 {
		t.Errorf("bad frames produced audits: %+v", audits())
	}
}

func TestDialWithoutSidecar(t *testing.T) {
	_, err := Dial(filepath.Join(t.TempDir(), "none.sock"), policy.Identity{})
	if err == nil || !strings.Contains(err.Error(), "no sidecar socket") {
		t.Fatalf("dial error %v, want ErrNoSidecar", err)
	}
}
