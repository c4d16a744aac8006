// The race detector's runtime keeps objects and pools differently (sync.Pool
// drops a quarter of what it is given, go-re2's WebAssembly instances are made
// again and freed by finalizers), so its live heap swings by tens of MiB between
// identical rounds and says nothing about the memos; `go test` without -race,
// which CI runs first, measures them.

//go:build !race

package waf

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
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
	e, err := compileEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, DefaultInspectionLimit, true)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	value := func(i, j int) string {
		s := fmt.Sprintf("v%d-%d-", i, j)
		return s + strings.Repeat("abcdefgh", (250-len(s))/8)
	}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			target := fmt.Sprintf("http://shop.example.com/%s?a=%s&b=%s", value(i, 0), value(i, 1), value(i, 2))
			r, _ := http.NewRequest(http.MethodGet, target, nil)
			r.RemoteAddr = "192.0.2.1:40000"
			r.Header.Set("User-Agent", value(i, 3))
			r.Header.Set("Accept", value(i, 4))
			r.Header.Set("X-Custom", value(i, 5))
			r.Header.Set("Cookie", "s="+value(i, 6)+"; t="+value(i, 7))
			e.inspect(r, nil, false)
		}
	}
	const n, rounds = 3000, 3
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	before := heap()
	send(0, n)
	first := heap() - before
	var most int64
	for i := 1; i <= rounds; i++ {
		send(i*n, (i+1)*n)
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
