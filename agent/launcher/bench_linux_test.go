//go:build linux

package launcher

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/detect"
	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// benchPolicyFile is bench/defender's runtime rule, the one its scripts
// measure under, so the benchmarks here decide what they decide.
const benchPolicyFile = "../../bench/defender/policy.json"

func benchHandler(b *testing.B) *handler {
	raw, err := os.ReadFile(benchPolicyFile)
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.ParsePolicy(raw)
	if err != nil {
		b.Fatalf("%s: %v", benchPolicyFile, err)
	}
	h := &handler{queue: make(chan api.Audit, 4096), log: slogDiscard(),
		det: &detect.Engine{Start: detect.KernelNow()}, self: os.Getpid(), entry: "/app"}
	h.setPolicy(p)
	return h
}

// BenchmarkHandlerExec is the launcher's decision on an allowed exec, a
// repeat of one already decided under the same rule (the bench's launch
// workload), with the built-in detectors on as by default. The caller is
// this process.
func BenchmarkHandlerExec(b *testing.B) {
	ev := supervise.ExecEvent{PID: os.Getpid(), Path: "/bin/true", Resolved: "/usr/bin/true", Argv: []string{"true"}, Parent: "/app"}
	// The supervisor hands the file's ctime over (read from the file its
	// lookup opened); without it the drift detector stats the file itself.
	given := ev
	given.Ctime = time.Unix(1, 0)
	for _, c := range []struct {
		name      string
		detectors bool
		ev        supervise.ExecEvent
	}{{"detectors", true, given}, {"detectors-stat", true, ev}, {"rule-only", false, given}} {
		b.Run(c.name, func(b *testing.B) {
			h := benchHandler(b)
			if !c.detectors {
				h.det = nil
			}
			for b.Loop() {
				if h.Exec(c.ev) != supervise.Allow {
					b.Fatal("denied")
				}
			}
			if len(h.queue) != 0 {
				b.Fatalf("%d audits for allowed execs", len(h.queue))
			}
		})
	}
}

// BenchmarkHandlerConnect is the decision on an allowed connect (the
// bench's connect workload: loopback).
func BenchmarkHandlerConnect(b *testing.B) {
	h := benchHandler(b)
	ev := supervise.ConnectEvent{Caller: supervise.Caller{PID: os.Getpid(), Exe: "/app"}}
	ev.Addr = netip.MustParseAddrPort("127.0.0.1:8080")
	for b.Loop() {
		if h.Connect(ev) != supervise.Allow {
			b.Fatal("denied")
		}
	}
}
