package waf

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// hostileValue is a 250-byte value new for every (i, j): the worst case for
// the gate's memos, which remember values up to 256 bytes.
func hostileValue(i, j int) string {
	s := fmt.Sprintf("v%d-%d-", i, j)
	return s + strings.Repeat("abcdefgh", (250-len(s))/8)
}

// sendHostile inspects requests from to to, each with new values in the
// path, parameters, headers and cookies, and one header too long for any
// memo.
func sendHostile(e *engine, from, to int) {
	for i := from; i < to; i++ {
		target := fmt.Sprintf("http://shop.example.com/%s?a=%s&b=%s", hostileValue(i, 0), hostileValue(i, 1), hostileValue(i, 2))
		r, _ := http.NewRequest(http.MethodGet, target, nil)
		r.RemoteAddr = "192.0.2.1:40000"
		r.Header.Set("User-Agent", hostileValue(i, 3))
		r.Header.Set("Accept", hostileValue(i, 4))
		r.Header.Set("X-Custom", hostileValue(i, 5))
		r.Header.Set("X-Long", strings.Repeat(hostileValue(i, 8), 4))
		r.Header.Set("Cookie", "s="+hostileValue(i, 6)+"; t="+hostileValue(i, 7))
		e.inspect(r, nil, false)
	}
}

// TestMemoBounds counts what the gate's memos hold (gate.Program.MemoStats)
// while hostile traffic brings new values in every request: the entries
// stay within the memos' two generations however many requests come, no
// value longer than the memo bound is kept, and the bytes held stay within
// the budget internal/gate documents (about 20 MiB when every memo is
// full of 256-byte values). It counts the memos themselves, so it holds
// under -race too (TestMemoWorstCase measures the heap, without -race).
func TestMemoBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the memos with thousands of requests")
	}
	// A configuration (inspection limit) of its own: engines of one
	// configuration share the gate program and its memos.
	e, err := compileEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, DefaultInspectionLimit+1, true)
	if err != nil {
		t.Fatal(err)
	}
	if e.gate == nil {
		t.Fatal("the engine has no gate")
	}
	start := e.gate.MemoStats()
	// 2 × 2,000 requests of 8 remembered values each: more distinct values
	// than two generations of the largest memo (2 × 8,192) hold.
	const n, rounds = 2000, 2
	for i := range rounds {
		sendHostile(e, i*n, (i+1)*n)
		s := e.gate.MemoStats()
		t.Logf("after %d hostile requests: %d memos, %d entries (bound %d), %.1f MiB of values and %.1f MiB of results, longest value %d bytes",
			(i+1)*n, s.Memos, s.Entries, s.Limit, float64(s.KeyBytes)/(1<<20), float64(s.ValueBytes)/(1<<20), s.LongestKey)
		if i == 0 && s.Entries <= start.Entries {
			t.Fatalf("the memos did not take the new values (%d entries, %d before): nothing measured", s.Entries, start.Entries)
		}
		if s.Over > 0 || s.Entries > s.Limit {
			t.Errorf("%d of %d memos hold more entries than their bound (%d entries in all, bound %d): they are not bounded", s.Over, s.Memos, s.Entries, s.Limit)
		}
		if s.LongestKey > 2*256 {
			t.Errorf("a %d-byte value is remembered: longer than any memo key may be", s.LongestKey)
		}
		if held := s.KeyBytes + s.ValueBytes; held > 24<<20 {
			t.Errorf("the memos hold %.1f MiB: more than the 20 MiB internal/gate budgets for a worst case", float64(held)/(1<<20))
		}
	}
}
