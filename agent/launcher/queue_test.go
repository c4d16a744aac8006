package launcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// countingSink keeps what it is sent.
type countingSink struct {
	mu     sync.Mutex
	audits []api.Audit
}

func (s *countingSink) Send(_ context.Context, audits []api.Audit) error {
	s.mu.Lock()
	s.audits = append(s.audits, audits...)
	s.mu.Unlock()
	return nil
}

// longArgv is the longest argv the supervisor reads: 256 strings, the
// name and 255 of 4,095 bytes (1 MiB with their NULs).
func longArgv(name string) []string {
	argv := []string{name}
	for i := 1; i < 256; i++ {
		argv = append(argv, strings.Repeat(fmt.Sprint(i%10), 4095))
	}
	return argv
}

// queuedBytes is the size of the audits waiting in h's queue.
func queuedBytes(h *handler) int64 {
	var held int64
	for range len(h.queue) {
		a := <-h.queue
		held += auditSize(&a)
		h.queue <- a
	}
	return held
}

// TestAuditQueueBytesBounded: while the sidecar does not read, 100 audits
// of 2 MiB each are made (as an exec audit was while it held the app's
// whole argv twice, or a detector's message may be). The audits waiting
// must stay within the queue's byte budget, the rest counted as dropped,
// and the overflow audit must say how many once the writer runs: nothing
// is lost silently.
func TestAuditQueueBytesBounded(t *testing.T) {
	h := &handler{id: policy.Identity{Container: "c"}, queue: make(chan api.Audit, 4096), log: slogDiscard()}
	argv := longArgv("nc")
	const audits = 100
	for pid := 1000; pid < 1000+audits; pid++ {
		h.emit(api.Audit{Kind: api.AuditThreat, Effect: policy.EffectAlert, Message: "Package manager run at runtime: " + strings.Join(argv, " "),
			Process: &api.ProcessDetail{Path: "/usr/bin/nc", Argv: argv, PID: pid}})
	}
	held := queuedBytes(h)
	queued, drops := len(h.queue), h.drops.Load()
	t.Logf("%d audits of 2 MiB: %d wait (%.1f MiB), %d dropped", audits, queued, float64(held)/(1<<20), drops)
	if held > maxQueuedBytes || h.queued.Load() != held {
		t.Errorf("audits waiting hold %.1f MiB (counted %d bytes); the budget is 64 MiB", float64(held)/(1<<20), h.queued.Load())
	}
	if queued == 0 || int64(queued)+drops != audits {
		t.Fatalf("%d audits wait and %d were dropped, of %d", queued, drops, audits)
	}
	sink := &countingSink{}
	h.startWriter(context.Background(), sink)()
	if len(sink.audits) != queued+1 {
		t.Fatalf("the writer sent %d audits, want the %d waiting and one overflow report", len(sink.audits), queued)
	}
	last := sink.audits[len(sink.audits)-1].Message
	if want := fmt.Sprintf("Audit queue overflow: %d audits were dropped", drops); last != want {
		t.Errorf("last audit %q, want %q", last, want)
	}
	if n := h.queued.Load(); n != 0 {
		t.Errorf("%d bytes still counted as queued after the queue was emptied", n)
	}
}

// TestExecAuditArgvCut: an app execs a flagged program with the longest
// argv the supervisor reads (1 MiB) from 100 processes while the sidecar
// does not read. Each audit carries the command cut (the message to
// audit.MaxExecMessage, the detail to audit.MaxArgv), says so with the
// count of what it left out, and all 100 fit in the queue's budget (with
// the whole command twice, 32 fitted and 68 were dropped). A short command
// is carried as it was. The repeat check still sees the whole argv: two
// refused execs of one process that differ past the cut are two audits.
func TestExecAuditArgvCut(t *testing.T) {
	newHandler := func(effect policy.Effect) *handler {
		h := &handler{id: policy.Identity{Container: "c"}, queue: make(chan api.Audit, 4096), log: slogDiscard()}
		h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{
			Name:      "r",
			Scope:     policy.Scope{Containers: []string{"c"}},
			Processes: policy.ProcessPolicy{Effect: effect, Denied: []string{"nc"}},
		}}})
		return h
	}
	exec := func(h *handler, pid int, argv []string) supervise.Verdict {
		return h.Exec(supervise.ExecEvent{PID: pid, Path: "/usr/bin/nc", Resolved: "/usr/bin/nc", Parent: "/bin/sh", Argv: argv})
	}
	head := "/usr/bin/nc launched from /bin/sh and is explicitly denied in the runtime rule (alert only). Full command: "
	long := longArgv("nc")

	t.Run("1 MiB argv", func(t *testing.T) {
		h := newHandler(policy.EffectAlert)
		const execs = 100
		for pid := 1000; pid < 1000+execs; pid++ {
			if exec(h, pid, long) != supervise.Allow {
				t.Fatal("an alert-only exec was refused")
			}
		}
		held := queuedBytes(h)
		queued, drops := len(h.queue), h.drops.Load()
		t.Logf("%d execs of 1 MiB argv: %d audits wait (%.1f MiB), %d dropped", execs, queued, float64(held)/(1<<20), drops)
		if queued != execs || drops != 0 || held > maxQueuedBytes {
			t.Fatalf("%d audits wait (%.1f MiB) and %d were dropped, want all %d within %d MiB", queued, float64(held)/(1<<20), drops, execs, maxQueuedBytes>>20)
		}
		// The message: "nc" and 3 strings of 4,095 bytes, then the mark;
		// the detail: "nc" and 15 of them (61,443 bytes), then the mark.
		wantMsg := head + strings.Join(long[:4], " ") + " " + audit.ArgvCut(long, 4)
		wantArgv := append(slices.Clip(long[:16]), audit.ArgvCut(long, 16))
		sink := &countingSink{}
		h.startWriter(context.Background(), sink)()
		if len(sink.audits) != execs {
			t.Fatalf("the writer sent %d audits, want %d (and no overflow report)", len(sink.audits), execs)
		}
		for i, a := range sink.audits {
			if a.Message != wantMsg || len(a.Message) > audit.MaxExecMessage {
				t.Fatalf("audit %d: message of %d bytes ending %q, want %d ending %q", i, len(a.Message), a.Message[max(0, len(a.Message)-70):], len(wantMsg), wantMsg[len(wantMsg)-70:])
			}
			if a.Process == nil || !slices.Equal(a.Process.Argv, wantArgv) {
				t.Fatalf("audit %d: detail argv %d strings, want %d ending %q", i, len(a.Process.Argv), len(wantArgv), wantArgv[len(wantArgv)-1])
			}
		}
	})

	t.Run("short argv", func(t *testing.T) {
		h := newHandler(policy.EffectAlert)
		argv := []string{"nc", "-l", "-p", "8080"}
		exec(h, 1000, argv)
		sink := &countingSink{}
		h.startWriter(context.Background(), sink)()
		if len(sink.audits) != 1 {
			t.Fatalf("%d audits, want 1", len(sink.audits))
		}
		a := sink.audits[0]
		if want := head + "nc -l -p 8080"; a.Message != want {
			t.Errorf("message %q, want %q", a.Message, want)
		}
		if a.Process == nil || !slices.Equal(a.Process.Argv, argv) {
			t.Errorf("detail %+v, want argv %q", a.Process, argv)
		}
	})

	t.Run("refusals differing past the cut", func(t *testing.T) {
		h := newHandler(policy.EffectPrevent)
		other := slices.Clone(long)
		other[255] = strings.Repeat("x", 4095) // far past what audits show
		for _, argv := range [][]string{long, long, other} {
			if exec(h, 1000, argv) != supervise.Deny {
				t.Fatal("a prevented exec was allowed")
			}
			h.Enforced(1000, supervise.Refused, nil)
		}
		sink := &countingSink{}
		h.startWriter(context.Background(), sink)()
		// The same command again is a PATH retry (one audit); the other
		// is a new command.
		if len(sink.audits) != 2 {
			t.Fatalf("%d audits for a refused command, its retry and another command, want 2", len(sink.audits))
		}
	})
}
