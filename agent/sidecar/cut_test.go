package sidecar

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// TestShipperCutCommands: audits of refused commands of 1 MiB reach a real
// console through the shipper, which folds repeats. Two that differ only
// past the cut stay two records; the same command twice is one record with
// Count 2. A 20 KiB WAF path is cut by the sidecar within what the console
// stores whole, so the console keeps the defender's mark (not its own).
func TestShipperCutCommands(t *testing.T) {
	cc, c := newConsole(t, &policy.Policy{})
	d := policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonDenied, Entry: "nc"}
	long := func(last string) []string {
		argv := []string{"nc"}
		for i := 1; i < 256; i++ {
			argv = append(argv, strings.Repeat(fmt.Sprint(i%10), 4095))
		}
		argv[255] = strings.Repeat(last, 4095)
		return argv
	}
	exec := func(argv []string) api.Audit {
		return api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditProcess, Effect: d.Effect, Rule: "r", Container: "app",
			Message: audit.ExecMessage("/usr/bin/nc", "/bin/sh", argv, d),
			Process: &api.ProcessDetail{Path: "/usr/bin/nc", Argv: audit.CutArgv(argv, audit.MaxArgv)}}
	}
	s := NewShipper(c, t.TempDir(), slog.New(slog.DiscardHandler))
	s.FlushEvery = 10 * time.Millisecond
	one, other := exec(long("a")), exec(long("b"))
	s.Add(one)
	s.Add(other)
	s.Add(exec(long("a")))
	s.Add(api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditWAF, Effect: policy.EffectPrevent, Message: "SQL injection",
		WAF: &api.WAFDetail{EventID: "e", Method: "GET", Path: "/" + strings.Repeat("a", 20<<10), Source: "10.0.0.9"}})
	runShipper(t, s)
	// Everything is in: the WAF audit and the three execs, however folded.
	got := cc.WaitAudits(20*time.Second, func(a []api.Audit) bool {
		n := 0
		for _, x := range a {
			n += max(x.Count, 1)
		}
		return n >= 4
	})
	counts := map[string]int{}
	for _, a := range got {
		switch {
		case a.WAF != nil:
			p := a.WAF.Path
			if len(p) > 16<<10 || !strings.Contains(p, audit.CutMarker) || strings.Contains(p, api.TruncatedMarker) {
				t.Errorf("the 20 KiB path stored as %d bytes ending %q, want at most 16 KiB with the defender's mark only", len(p), p[max(0, len(p)-60):])
			}
		case a.Message == one.Message:
			counts["a"] += max(a.Count, 1)
			counts["a records"]++
		case a.Message == other.Message:
			counts["b"] += max(a.Count, 1)
			counts["b records"]++
		default:
			t.Errorf("unexpected audit %.200q", a.Message)
		}
	}
	if want := map[string]int{"a": 2, "a records": 1, "b": 1, "b records": 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("stored %v, want %v: two commands that differ past the cut are two records, the same one twice is one of count 2", counts, want)
	}
}
