package waf

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// DefaultAlertWindow is how long the rate-limit and bot findings of one
// client are counted, after the first one's audit, before their summary
// audit.
const DefaultAlertWindow = 10 * time.Second

// maxAggregatedClients bounds the (rule, client, protection) keys the
// aggregator tracks; findings of further clients are counted together
// per rule and protection.
const maxAggregatedClients = 4096

// aggregated reports whether a protection's audits are aggregated per
// client: the ones a flood trips on every request.
func aggregated(protection string) bool {
	return protection == protectionRateLimit || protection == protectionBots
}

// aggKey is what one audit stream is about. client is "" for the clients
// beyond the tracked ones.
type aggKey struct {
	rule, client, protection string
}

// aggEntry counts the findings of one key since its last audit.
type aggEntry struct {
	count int
	// eventID is the ID the summary will carry: the block pages of the
	// requests it counts show it.
	eventID string
	// The last finding counted: what the summary reports.
	effect         policy.Effect
	note, severity string
	method, path   string
	identity       policy.Identity
}

// alertAggregator turns a flood of rate-limit and bot findings into one
// audit for the first finding of a (rule, client, protection) and then, every
// window, one summary audit with the number of findings since. A key with no
// finding in a window is forgotten, so its next finding is audited at once
// again. Memory is bounded: at most max keys, the rest counted per rule and
// protection. flush emits every pending count; Serve and Close call it, so
// no finding is lost at shutdown.
type alertAggregator struct {
	window time.Duration
	max    int
	emit   func(api.Audit)

	mu      sync.Mutex
	entries map[aggKey]*aggEntry
	started time.Time // of the current window
}

func newAlertAggregator(window time.Duration, emit func(api.Audit)) *alertAggregator {
	return &alertAggregator{window: window, max: maxAggregatedClients, emit: emit, entries: map[aggKey]*aggEntry{}, started: time.Now()}
}

// note records a finding. It returns the event ID the request's answer
// shows and whether the finding must be audited now (the first of its key
// in the window); otherwise it is counted for the summary.
func (a *alertAggregator) note(key aggKey, f finding, r *http.Request, id policy.Identity) (eventID string, auditNow bool) {
	var due []api.Audit
	a.mu.Lock()
	if time.Since(a.started) >= a.window {
		// No ticker (ServeHTTP without Serve) or a late one: the window is over.
		due = a.rollLocked()
	}
	e, ok := a.entries[key]
	if !ok {
		if len(a.entries) < a.max {
			a.entries[key] = &aggEntry{eventID: newEventID()}
			a.mu.Unlock()
			a.send(due)
			return newEventID(), true
		}
		// Beyond the tracked clients: counted together, from the first.
		key.client = ""
		if e, ok = a.entries[key]; !ok {
			e = &aggEntry{eventID: newEventID()}
			a.entries[key] = e // one per rule and protection, beyond max
		}
	}
	e.count++
	e.effect, e.note, e.severity = f.effect, f.note, f.severity
	e.method, e.path, e.identity = r.Method, r.URL.Path, id
	eventID = e.eventID
	a.mu.Unlock()
	a.send(due)
	return eventID, false
}

// rollLocked ends the window: the summaries of the keys with counts, and
// the keys without any are forgotten.
func (a *alertAggregator) rollLocked() []api.Audit {
	var out []api.Audit
	for k, e := range a.entries {
		if e.count == 0 {
			delete(a.entries, k)
			continue
		}
		out = append(out, a.summary(k, e, time.Since(a.started)))
		e.count, e.eventID = 0, newEventID()
	}
	a.started = time.Now()
	return out
}

func (a *alertAggregator) send(audits []api.Audit) {
	for _, au := range audits {
		a.emit(au)
	}
}

// flush emits the summaries of every pending count and starts a new
// window.
func (a *alertAggregator) flush() {
	a.mu.Lock()
	due := a.rollLocked()
	a.mu.Unlock()
	a.send(due)
}

// run flushes every window until ctx ends.
func (a *alertAggregator) run(ctx context.Context) {
	t := time.NewTicker(a.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.flush()
		}
	}
}

// tracked is how many keys the aggregator holds (tests).
func (a *alertAggregator) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// summary is the audit of the findings counted for a key.
func (a *alertAggregator) summary(k aggKey, e *aggEntry, over time.Duration) api.Audit {
	action := "detected"
	if e.effect == policy.EffectPrevent {
		action = "blocked"
	}
	from := k.client
	if from == "" {
		from = fmt.Sprintf("clients beyond the %d tracked", a.max)
	}
	noun := "requests"
	if e.count == 1 {
		noun = "request"
	}
	over = max(over.Round(time.Second), time.Second) // "in the last 1s" for a shorter final window
	msg := fmt.Sprintf("%s %s %d more %s from %s in the last %s (last %s %s)", protectionNames[policy.Protection(k.protection)], action, e.count, noun, from, over, e.method, e.path)
	if e.note != "" {
		msg += ": " + e.note
	}
	return api.Audit{
		ID:         e.eventID,
		Time:       time.Now().UTC(),
		TaskFamily: e.identity.TaskFamily,
		Container:  e.identity.Container,
		Image:      e.identity.Image,
		Kind:       api.AuditWAF,
		Effect:     e.effect,
		Rule:       k.rule,
		Severity:   e.severity,
		Message:    fmt.Sprintf("%s (event %s)", msg, e.eventID),
		WAF: &api.WAFDetail{
			EventID:     e.eventID,
			Method:      e.method,
			Path:        e.path,
			Source:      from,
			Protections: []string{k.protection},
		},
	}
}

// clientName is how audits name a request's client.
func clientName(r *http.Request, client netip.Addr) string {
	if client.IsValid() {
		return client.String()
	}
	src, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return src
}
