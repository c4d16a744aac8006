package waf

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/taskguard/taskguard/console/policy"
)

// The protections of a rule beyond CRS's families, by the name audits carry.
const (
	protectionBodyLimit = "body-limit"
	protectionAPI       = "api"
	protectionRateLimit = "rate-limit"
	protectionSources   = "sources"
	protectionBots      = "bots"
)

// finding is what one of the rule's own checks (sources, rate limit, API,
// bots) found in a request.
type finding struct {
	protection string
	effect     policy.Effect
	note       string
	severity   string
	// status answers the request under prevent; retryAfter goes with 429.
	status     int
	retryAfter time.Duration
}

// verdict turns the finding into the verdict its audit reports.
func (f finding) verdict() verdict {
	return verdict{effect: f.effect, protections: []string{f.protection}, note: f.note, severity: f.severity}
}

// checks are a rule's own protections besides CRS, compiled.
type checks struct {
	clients clients
	sources *sourceList
	rate    *rateLimiter
	api     *apiSpec
	apiEff  policy.Effect
	bots    policy.Effect
}

// sourceList is a rule's allowed and denied client addresses.
type sourceList struct {
	effect          policy.Effect
	allowed, denied []netip.Prefix
}

func newChecks(rule policy.WAFRule, now func() time.Time) (checks, error) {
	var c checks
	var err error
	if c.clients, err = newClients(rule); err != nil {
		return checks{}, err
	}
	if s := rule.Sources; s != nil && enforced(s.Effect) {
		c.sources = &sourceList{effect: s.Effect}
		for _, a := range s.Allowed {
			p, err := policy.ParsePrefix(a)
			if err != nil {
				return checks{}, err
			}
			c.sources.allowed = append(c.sources.allowed, p)
		}
		for _, d := range s.Denied {
			p, err := policy.ParsePrefix(d)
			if err != nil {
				return checks{}, err
			}
			c.sources.denied = append(c.sources.denied, p)
		}
	}
	if rl := rule.RateLimit; rl != nil && enforced(rl.Effect) {
		c.rate = newRateLimiter(*rl, now)
	}
	if a := rule.API; a != nil && enforced(a.Effect) {
		if c.api, err = newAPISpec(a.Spec); err != nil {
			return checks{}, err
		}
		c.apiEff = a.Effect
	}
	if enforced(rule.Bots) {
		c.bots = policy.EffectAlert // alert-only, whatever the rule says
	}
	return c, nil
}

func enforced(e policy.Effect) bool { return e == policy.EffectAlert || e == policy.EffectPrevent }

// beforeBody runs the checks that need no body: source lists, then the rate
// limit (a refused source does not spend a token).
func (c *checks) beforeBody(r *http.Request, client netip.Addr, ok bool) []finding {
	var out []finding
	if s := c.sources; s != nil {
		switch {
		case !ok:
			out = append(out, finding{protectionSources, s.effect, "client address " + r.RemoteAddr + " could not be read", "high", http.StatusForbidden, 0})
		case containing(s.denied, client).IsValid():
			out = append(out, finding{protectionSources, s.effect, "address in the denied list (" + containing(s.denied, client).String() + ")", "high", http.StatusForbidden, 0})
		case len(s.allowed) > 0 && !containing(s.allowed, client).IsValid():
			out = append(out, finding{protectionSources, s.effect, "address not in the allowed list", "high", http.StatusForbidden, 0})
		}
		if len(out) > 0 && s.effect == policy.EffectPrevent {
			return out
		}
	}
	if l := c.rate; l != nil && ok {
		if allowed, wait := l.allow(client); !allowed {
			out = append(out, finding{protectionRateLimit, l.cfg.Effect,
				fmt.Sprintf("more than %d requests in %d s", l.cfg.Requests, l.cfg.PeriodSeconds), "medium", http.StatusTooManyRequests, wait})
		}
	}
	return out
}

// afterBody runs the checks that read the body: the API description, then
// the bot signals.
func (c *checks) afterBody(ctx context.Context, r *http.Request, body []byte, truncated bool) []finding {
	var out []finding
	if c.api != nil {
		if why := c.api.check(ctx, r, body, truncated); why != "" {
			out = append(out, finding{protectionAPI, c.apiEff, why, "medium", http.StatusForbidden, 0})
		}
	}
	if c.bots != "" {
		if why := botSignals(r); why != "" {
			out = append(out, finding{protectionBots, c.bots, why, "low", 0, 0})
		}
	}
	return out
}

// containing returns the first prefix of list holding a, or the zero prefix.
func containing(list []netip.Prefix, a netip.Addr) netip.Prefix {
	for _, p := range list {
		if p.Contains(a) {
			return p
		}
	}
	return netip.Prefix{}
}

// retryAfter is a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
