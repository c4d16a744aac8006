package launcher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

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

// TestAuditQueueBytesBounded: while the sidecar does not read, an app
// execs a flagged program with the longest argv the supervisor reads (256
// strings of 4 KiB) from 100 processes. The audits waiting must stay within
// the queue's byte budget (each holds its command twice, ~2 MiB), the rest
// counted as dropped, and the overflow audit must say how many once the
// writer runs: nothing is lost silently.
func TestAuditQueueBytesBounded(t *testing.T) {
	h := &handler{id: policy.Identity{Container: "c"}, queue: make(chan api.Audit, 4096), log: slogDiscard()}
	h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{
		Name:      "r",
		Scope:     policy.Scope{Containers: []string{"c"}},
		Processes: policy.ProcessPolicy{Effect: policy.EffectAlert, Denied: []string{"nc"}},
	}}})
	argv := []string{"nc"}
	for i := 1; i < 256; i++ {
		argv = append(argv, strings.Repeat(fmt.Sprint(i%10), 4095))
	}
	const execs = 100
	for pid := 1000; pid < 1000+execs; pid++ {
		ev := supervise.ExecEvent{PID: pid, Path: "/usr/bin/nc", Resolved: "/usr/bin/nc", Parent: "/bin/sh", Argv: argv}
		if h.Exec(ev) != supervise.Allow {
			t.Fatal("an alert-only exec was refused")
		}
	}
	var held int64
	for range len(h.queue) {
		a := <-h.queue
		held += auditSize(&a)
		h.queue <- a
	}
	queued, drops := len(h.queue), h.drops.Load()
	t.Logf("%d execs: %d audits wait (%.1f MiB), %d dropped", execs, queued, float64(held)/(1<<20), drops)
	if held > 64<<20 || h.queued.Load() != held {
		t.Errorf("audits waiting hold %.1f MiB (counted %d bytes); the budget is 64 MiB", float64(held)/(1<<20), h.queued.Load())
	}
	if queued == 0 || int64(queued)+drops != execs {
		t.Fatalf("%d audits wait and %d were dropped, of %d", queued, drops, execs)
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
