package gate

import (
	"fmt"
	"testing"
)

// A value that keeps coming back survives a stream of one-off values, and
// the memo never holds more than two generations.
func TestMemoGenerations(t *testing.T) {
	m := memo[int]{limit: 8}
	m.put("hot", 1)
	for i := range 1000 {
		m.put(fmt.Sprint("once-", i), i)
		if i%5 == 0 {
			if v, ok := m.get("hot"); !ok || v != 1 {
				t.Fatalf("after %d one-off values: hot = %v, %v", i, v, ok)
			}
		}
		if n := len(m.cur) + len(m.prev); n > 2*m.limit {
			t.Fatalf("%d entries, limit %d per generation", n, m.limit)
		}
	}
	if _, ok := m.get("once-0"); ok {
		t.Error("an old one-off value is still remembered")
	}
	m.reset()
	if _, ok := m.get("hot"); ok {
		t.Error("reset kept a value")
	}
}
