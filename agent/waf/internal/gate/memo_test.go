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

// A result computed before a reset is not stored after it (putIn), and a
// request's value states read before a reset are dropped (syncMemo): the
// head memo's results of macro heads hold for one expansion only.
func TestMemoResetGeneration(t *testing.T) {
	m := memo[int]{limit: 8}
	gen := m.generation()
	m.putIn(gen, "a", 1)
	if v, ok := m.get("a"); !ok || v != 1 {
		t.Fatalf("a = %v, %v; want 1 stored in the current generation", v, ok)
	}
	m.reset()
	m.putIn(gen, "b", 2)
	if _, ok := m.get("b"); ok {
		t.Error("a result of the generation before the reset was stored")
	}
	m.putIn(m.generation(), "b", 2)
	if v, ok := m.get("b"); !ok || v != 2 {
		t.Errorf("b = %v, %v; want 2", v, ok)
	}

	p := compiledCRS(t)
	sc := p.scratch.Get().(*scratch)
	defer sc.release()
	if len(sc.hits) == 0 {
		sc.hits = make([]uint64, (p.nHeads+63)/64)
	}
	sc.syncMemo()
	st := sc.valueState("value")
	st.bits[0] = 1
	sc.syncMemo()
	if got := sc.valueState("value"); got.bits[0] != 1 {
		t.Fatal("the request's state was dropped without a reset")
	}
	p.memo.reset()
	sc.syncMemo()
	if got := sc.valueState("value"); got.bits[0] != 0 {
		t.Error("the request kept a state read before the memo's reset")
	}
}
