package gate

import (
	"strings"
	"sync"
)

// memo is a bounded map from values to results shared by the requests of a
// program. Lookups see two generations; when the current one is full it
// becomes the previous one and the oldest is dropped. A value that keeps
// coming back (a header value, a constant parameter) is found in the
// previous generation and carried into the current one, so it survives a
// stream of one-off values; at most 2×limit entries are kept.
type memo[V any] struct {
	mu        sync.RWMutex
	cur, prev map[string]V
	limit     int
	// gen counts the resets: what a request read before one may be stale.
	gen uint64
}

func (m *memo[V]) get(k string) (V, bool) {
	m.mu.RLock()
	v, ok := m.cur[k]
	old := false
	if !ok {
		v, ok = m.prev[k]
		old = ok
	}
	m.mu.RUnlock()
	if old {
		m.put(k, v)
	}
	return v, ok
}

func (m *memo[V]) put(k string, v V) {
	m.mu.Lock()
	m.store(k, v)
	m.mu.Unlock()
}

// store adds k to the current generation; m.mu is held.
func (m *memo[V]) store(k string, v V) {
	if m.cur == nil || len(m.cur) >= m.limit {
		// Sized once: growing a map of thousands of strings rehashes
		// them all, a cost that fell on the requests that filled it.
		m.prev, m.cur = m.cur, make(map[string]V, m.limit)
	}
	m.cur[strings.Clone(k)] = v
}

// putIn is put, unless the memo was reset since generation gen.
func (m *memo[V]) putIn(gen uint64, k string, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen == gen {
		m.store(k, v)
	}
}

// reset forgets everything.
func (m *memo[V]) reset() {
	m.mu.Lock()
	m.cur, m.prev = nil, nil
	m.gen++
	m.mu.Unlock()
}

// generation returns the number of resets so far.
func (m *memo[V]) generation() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.gen
}

// stats adds what m holds to s: its entries, the bytes of their keys and
// values (size gives a value's), and its bound (two generations).
func (m *memo[V]) stats(s *MemoStats, size func(V) int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s.Limit += 2 * m.limit
	s.Memos++
	if len(m.cur)+len(m.prev) > 2*m.limit {
		s.Over++
	}
	for _, g := range []map[string]V{m.cur, m.prev} {
		s.Entries += len(g)
		for k, v := range g {
			s.KeyBytes += len(k)
			s.ValueBytes += size(v)
			s.LongestKey = max(s.LongestKey, len(k))
		}
	}
}

// MemoStats is what a Program's cross-request memos hold.
type MemoStats struct {
	// Memos is the number of memos, Over those holding more entries than
	// their bound (two generations) allows.
	Memos, Over int
	// Entries is the number of remembered values; Limit the most the
	// memos' bounds allow in all.
	Entries, Limit int
	// KeyBytes and ValueBytes are the bytes of the remembered values and
	// of what is remembered about them; LongestKey the longest value.
	KeyBytes, ValueBytes, LongestKey int
}

// MemoStats counts what p's memos hold across requests (head, scan, rule
// and key memos). It walks every entry under the memos' locks: for tests
// and diagnostics, not for the request path.
func (p *Program) MemoStats() MemoStats {
	var s MemoStats
	words := func(v []uint64) int { return 8 * len(v) }
	p.memo.stats(&s, words)
	for i := range p.sets {
		p.sets[i].memo.stats(&s, words)
	}
	for _, rules := range p.phases {
		for _, r := range rules {
			r.memo.stats(&s, func(bool) int { return 1 })
		}
	}
	p.lowers.stats(&s, func(v string) int { return len(v) })
	return s
}
