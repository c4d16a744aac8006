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
	if m.cur == nil || len(m.cur) >= m.limit {
		// Sized once: growing a map of thousands of strings rehashes
		// them all, a cost that fell on the requests that filled it.
		m.prev, m.cur = m.cur, make(map[string]V, m.limit)
	}
	m.cur[strings.Clone(k)] = v
	m.mu.Unlock()
}

// reset forgets everything.
func (m *memo[V]) reset() {
	m.mu.Lock()
	m.cur, m.prev = nil, nil
	m.mu.Unlock()
}
