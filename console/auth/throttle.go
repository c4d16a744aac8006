package auth

import (
	"sync"
	"time"
)

// ThrottleConfig sets how repeated password failures for one user from one
// source are slowed down. The zero value of a field takes its default.
type ThrottleConfig struct {
	// FreeFailures are answered without delay (default 3).
	FreeFailures int
	// BaseDelay is the delay before answering the first slowed failure; it
	// doubles with each further failure (default 250ms).
	BaseDelay time.Duration
	// MaxDelay caps the delay (default 4s).
	MaxDelay time.Duration
	// Lockout is the failure count from which attempts are refused with 429
	// before the password is even checked (default 10).
	Lockout int
	// Window is how long after its last failure a key's count is forgotten,
	// which also ends a lockout (default 10m).
	Window time.Duration
	// MaxKeys bounds the memory the throttle holds (default 100,000 keys).
	MaxKeys int
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.FreeFailures == 0 {
		c.FreeFailures = 3
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = 250 * time.Millisecond
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 4 * time.Second
	}
	if c.Lockout == 0 {
		c.Lockout = 10
	}
	if c.Window == 0 {
		c.Window = 10 * time.Minute
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 100_000
	}
	return c
}

// throttle counts failures per key (user and source address). It lives in the
// process: with several console replicas each counts on its own, so an
// attacker spread over N replicas gets N times the attempts before lockout.
type throttle struct {
	cfg  ThrottleConfig
	mu   sync.Mutex
	keys map[string]failures
}

type failures struct {
	count int
	last  time.Time
}

func newThrottle(cfg ThrottleConfig) *throttle {
	return &throttle{cfg: cfg.withDefaults(), keys: map[string]failures{}}
}

// locked returns how long key must wait before it may try again, or 0.
func (t *throttle) locked(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.current(key, now)
	if !ok || f.count < t.cfg.Lockout {
		return 0
	}
	return f.last.Add(t.cfg.Window).Sub(now)
}

// fail records a failure and returns how long to wait before answering it.
func (t *throttle) fail(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, _ := t.current(key, now)
	f.count++
	f.last = now
	if len(t.keys) >= t.cfg.MaxKeys {
		t.sweep(now)
	}
	t.keys[key] = f
	over := f.count - t.cfg.FreeFailures
	if over <= 0 {
		return 0
	}
	d := t.cfg.BaseDelay
	for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// succeed forgets key's failures.
func (t *throttle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

func (t *throttle) current(key string, now time.Time) (failures, bool) {
	f, ok := t.keys[key]
	if ok && now.Sub(f.last) >= t.cfg.Window {
		delete(t.keys, key)
		return failures{}, false
	}
	return f, ok
}

// sweep drops expired keys; when every key is live it drops them all rather
// than grow without bound.
func (t *throttle) sweep(now time.Time) {
	for k, f := range t.keys {
		if now.Sub(f.last) >= t.cfg.Window {
			delete(t.keys, k)
		}
	}
	if len(t.keys) >= t.cfg.MaxKeys {
		clear(t.keys)
	}
}
