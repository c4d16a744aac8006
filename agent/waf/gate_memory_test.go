// The race detector's runtime keeps objects and pools differently (sync.Pool
// drops a quarter of what it is given, go-re2's WebAssembly instances are made
// again and freed by finalizers), so its live heap swings by tens of MiB between
// identical rounds and says nothing about the memos; `go test` without -race,
// which CI runs first, measures them (TestMemoBounds counts the memos'
// entries in both builds).

//go:build !race

package waf

import (
	"runtime"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// TestMemoWorstCase fills the gate's memos with hostile traffic: every
// request brings new 256-byte values in headers, cookies, parameters and the
// path. What the memos keep must stay bounded (internal/gate's memo bounds):
// once a first round of requests has filled them, more rounds of new values
// must not make the live heap grow much further. Unbounded memos grow with
// every round (each round of 3,000 requests adds what the first did); the
// bounded ones move within their two generations. The criterion is relative
// to the first round, so what other tests of the package left live does not
// move it; the absolute figure is bounded too.
func TestMemoWorstCase(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the memos with thousands of requests")
	}
	// A configuration (inspection limit) of its own, so that no other
	// test's engine shares the gate program whose memos this one fills.
	e, err := compileEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, DefaultInspectionLimit+2, true)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	const n, rounds = 3000, 3
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	before := heap()
	sendHostile(e, 0, n)
	first := heap() - before
	var most int64
	for i := 1; i <= rounds; i++ {
		sendHostile(e, i*n, (i+1)*n)
		most = max(most, heap()-before)
	}
	t.Logf("heap grew %.1f MiB in the first %d hostile requests, at most %.1f MiB after %d more", mib(first), n, mib(most), rounds*n)
	if first <= 0 {
		t.Fatalf("the heap did not grow (%.1f MiB) while the memos filled: nothing measured", mib(first))
	}
	if most-first > first*3/4 {
		t.Errorf("the heap kept growing: %.1f MiB after the first %d requests, %.1f MiB after %d more; the gate's memos are not bounded", mib(first), n, mib(most), rounds*n)
	}
	if most > 64<<20 {
		t.Errorf("heap grew %.1f MiB: the gate's memos hold too much", mib(most))
	}
}
