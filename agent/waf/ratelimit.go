package waf

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/policy"
)

// maxRateClients bounds the clients a rate limiter remembers per
// generation (two generations are kept: at most twice this many buckets).
const maxRateClients = 1 << 16

// rateLimiter is a token bucket per client address: Requests tokens, refilled
// evenly over PeriodSeconds. Memory is bounded by two generations of
// buckets: a generation ends after one period (a bucket idle that long is
// full again, so forgetting it changes nothing) or when it holds
// maxRateClients clients (then the oldest clients are forgotten early and
// start again with a full bucket).
type rateLimiter struct {
	cfg    policy.WAFRateLimit
	rate   float64 // tokens per second
	period time.Duration
	now    func() time.Time

	mu        sync.Mutex
	cur, prev map[netip.Addr]*bucket
	rotated   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(cfg policy.WAFRateLimit, now func() time.Time) *rateLimiter {
	period := time.Duration(cfg.PeriodSeconds) * time.Second
	return &rateLimiter{cfg: cfg, rate: float64(cfg.Requests) / period.Seconds(), period: period, now: now,
		cur: map[netip.Addr]*bucket{}, prev: map[netip.Addr]*bucket{}, rotated: now()}
}

// allow takes a token for client. When none is left it returns false and
// how long until one is.
func (l *rateLimiter) allow(client netip.Addr) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.rotated) >= l.period || len(l.cur) >= maxRateClients {
		l.prev, l.cur, l.rotated = l.cur, make(map[netip.Addr]*bucket, len(l.cur)), now
	}
	b, ok := l.cur[client]
	if !ok {
		if b, ok = l.prev[client]; ok {
			delete(l.prev, client)
		} else {
			b = &bucket{tokens: float64(l.cfg.Requests), last: now}
		}
		l.cur[client] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(l.cfg.Requests), b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// clients returns how many clients the limiter remembers (tests).
func (l *rateLimiter) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.prev)
}
