package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/taskguard/taskguard/console/store"
)

// ThrottleConfig sets how password failures are slowed down and then
// refused. Attempts are counted in the store, atomically, so every console
// replica on one database shares the counts, and concurrent guesses cannot
// slip past them. Three counts apply, each refusing with 429 past its limit:
// one user from one address (Lockout), one user from any address
// (UserLockout: a guesser spread over many addresses) and one address for
// any user (AddressLockout: one address trying many users). The zero value
// of a field takes its default.
type ThrottleConfig struct {
	// FreeFailures of one user from one address are answered without delay (default 3).
	FreeFailures int
	// BaseDelay is the delay before answering the first slowed failure; it
	// doubles with each further failure (default 250ms).
	BaseDelay time.Duration
	// MaxDelay caps the delay (default 4s).
	MaxDelay time.Duration
	// Lockout is how many attempts one user from one address may make
	// within Window; further attempts are refused with 429 before the
	// password is checked (default 10).
	Lockout int
	// UserLockout is the same for one user from every address together (default 50).
	UserLockout int
	// AddressLockout is the same for one address trying any user (default 100).
	AddressLockout int
	// Window is how long after its last counted attempt a count is
	// forgotten, which also ends a lockout (default 10m).
	Window time.Duration
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
	if c.UserLockout == 0 {
		c.UserLockout = 50
	}
	if c.AddressLockout == 0 {
		c.AddressLockout = 100
	}
	if c.Window == 0 {
		c.Window = 10 * time.Minute
	}
	return c
}

// throttle counts password attempts in the store. An attempt is counted
// before the password is checked (so 150 concurrent guesses take 150
// distinct counts), and a success takes it back.
type throttle struct {
	cfg   ThrottleConfig
	store store.AuthStore
}

func newThrottle(cfg ThrottleConfig, st store.AuthStore) *throttle {
	return &throttle{cfg: cfg.withDefaults(), store: st}
}

// attemptKeys are the store keys of one attempt. User names come from the
// request (any length, any bytes), so they are hashed into the key.
type attemptKeys struct{ pair, user, addr string }

func keysFor(username, source string) attemptKeys {
	h := func(s string) string {
		d := sha256.Sum256([]byte(s))
		return hex.EncodeToString(d[:16])
	}
	return attemptKeys{pair: "p:" + h(username+"\x00"+source), user: "u:" + h(username), addr: "a:" + h(source)}
}

// attempt counts one attempt. It returns how long the caller must wait when
// a count is past its limit (refuse with 429), else 0 and the count of the
// user from this address (for the delay).
//
// An attempt any of whose counts is already past its limit is refused
// before anything is counted: an address locked out trying one user name
// after another would otherwise add a count (a row) for each new name and
// pair, bounded only by its rate until the counts are forgotten. Otherwise
// the counts are taken one after the other, stopping at the first refusal,
// so a guesser locked out on one address does not also use up the user's
// count from every address.
func (t *throttle) attempt(ctx context.Context, k attemptKeys, now time.Time) (wait time.Duration, pair int, err error) {
	counts := []struct {
		key   string
		limit int
	}{{k.pair, t.cfg.Lockout}, {k.user, t.cfg.UserLockout}, {k.addr, t.cfg.AddressLockout}}
	held, err := t.store.Failures(ctx, now.Add(-t.cfg.Window), k.pair, k.user, k.addr)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range counts {
		if f, ok := held[c.key]; ok && f.Count > c.limit {
			wait = max(wait, t.lockedFor(f.Last, now))
		}
	}
	if wait > 0 {
		return wait, 0, nil
	}
	for _, c := range counts {
		n, last, err := t.store.CountFailure(ctx, c.key, now, t.cfg.Window, c.limit)
		if err != nil {
			return 0, 0, err
		}
		if n > c.limit {
			return t.lockedFor(last, now), 0, nil
		}
		if c.key == k.pair {
			pair = n
		}
	}
	return 0, pair, nil
}

// lockedFor is how long a lockout caused by an attempt at last still lasts
// at now (at least a second: Retry-After counts whole seconds).
func (t *throttle) lockedFor(last, now time.Time) time.Duration {
	return max(last.Add(t.cfg.Window).Sub(now), time.Second)
}

// delay is how long to wait before answering the pair's n-th failure.
func (t *throttle) delay(n int) time.Duration {
	over := n - t.cfg.FreeFailures
	if over <= 0 {
		return 0
	}
	d := t.cfg.BaseDelay
	for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// succeed forgets the user's failures and takes this attempt back from the
// address, so that an office behind one address is not locked out by its
// own successful sign-ins.
func (t *throttle) succeed(ctx context.Context, k attemptKeys) error {
	if err := t.store.ClearFailures(ctx, k.pair, k.user); err != nil {
		return err
	}
	return t.store.ForgiveFailure(ctx, k.addr)
}
