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
// path. What the memos keep must stay bounded (internal/gate's memo bounds).
func TestMemoWorstCase(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the memos with thousands of requests")
	}
	e, err := compileEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, DefaultInspectionLimit, true)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	value := func(i, j int) string {
		s := fmt.Sprintf("v%d-%d-", i, j)
		return s + strings.Repeat("abcdefgh", (250-len(s))/8)
	}
	before := heap()
	const n = 6000
	for i := range n {
		target := fmt.Sprintf("http://shop.example.com/%s?a=%s&b=%s", value(i, 0), value(i, 1), value(i, 2))
		r, _ := http.NewRequest(http.MethodGet, target, nil)
		r.RemoteAddr = "192.0.2.1:40000"
		r.Header.Set("User-Agent", value(i, 3))
		r.Header.Set("Accept", value(i, 4))
		r.Header.Set("X-Custom", value(i, 5))
		r.Header.Set("Cookie", "s="+value(i, 6)+"; t="+value(i, 7))
		e.inspect(r, nil, false)
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew %.1f MiB after %d hostile requests", float64(grown)/(1<<20), n)
	if grown > 64<<20 {
		t.Errorf("heap grew %d MiB: the gate's memos are not bounded", grown>>20)
	}
}
