package waf

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// MaxPayload bounds the payload excerpt an audit carries, in bytes.
const MaxPayload = 256

// protectionNames are the human names used in audit messages.
var protectionNames = map[policy.Protection]string{
	policy.ProtectionSQLi:          "SQL injection",
	policy.ProtectionXSS:           "cross-site scripting",
	policy.ProtectionCmdi:          "command injection",
	policy.ProtectionLFI:           "file inclusion",
	policy.ProtectionCodeInjection: "code injection",
	policy.ProtectionAttackTools:   "attack tool",
	policy.ProtectionShellshock:    "Shellshock",
	policy.ProtectionProtocol:      "HTTP protocol violation",
	protectionBodyLimit:            "oversized body",
	protectionAPI:                  "API violation",
	protectionRateLimit:            "rate limit",
	protectionSources:              "source address",
	protectionBots:                 "bot",
}

// secretHeaders are headers whose values never reach an audit.
var secretHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"x-api-key": true, "x-auth-token": true,
}

// audit builds the audit of one inspected request and hands it to the sink.
func (p *Proxy) audit(ctx context.Context, e *engine, r *http.Request, client netip.Addr, v verdict, eventID string) {
	if p.opts.sink == nil {
		return
	}
	src := clientName(r, client)
	names := make([]string, 0, len(v.protections))
	for _, pr := range v.protections {
		names = append(names, protectionNames[policy.Protection(pr)])
	}
	action := "detected"
	if v.effect == policy.EffectPrevent {
		action = "blocked"
	}
	msg := fmt.Sprintf("%s %s %s from %s", strings.Join(names, ", "), action, r.Method+" "+r.URL.Path, src)
	if v.note != "" {
		msg += ": " + v.note
	}
	sev := v.severity
	if sev == "" || len(v.matches) > 0 {
		sev = severity(v)
	}
	now := time.Now().UTC()
	p.opts.sink(ctx, api.Audit{
		ID:         eventID,
		Time:       now,
		TaskFamily: p.opts.identity.TaskFamily,
		Container:  p.opts.identity.Container,
		Image:      p.opts.identity.Image,
		Kind:       api.AuditWAF,
		Effect:     v.effect,
		Rule:       e.rule.Name,
		Severity:   sev,
		Message:    fmt.Sprintf("%s (event %s)", msg, eventID),
		WAF: &api.WAFDetail{
			EventID:     eventID,
			Method:      r.Method,
			Path:        r.URL.Path,
			Source:      src,
			Protections: v.protections,
			RuleIDs:     v.ruleIDs(),
			Payload:     excerpt(v),
		},
	})
}

// severity is the audit severity of the strongest match.
func severity(v verdict) string {
	best := 0
	for _, m := range v.matches {
		best = max(best, score(m.id, m.severity))
	}
	switch {
	case best >= 5:
		return "critical"
	case best == 4:
		return "high"
	case best == 3:
		return "medium"
	}
	return "low"
}

// excerpt is the bounded payload of the matches: "VARIABLE:key=value" pairs,
// with the values of credential headers and cookies redacted.
func excerpt(v verdict) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, m := range v.matches {
		for _, d := range m.data {
			name := d.Variable().Name()
			if d.Key() != "" {
				name += ":" + d.Key()
			}
			if seen[name] || d.Value() == "" {
				continue
			}
			seen[name] = true
			val := d.Value()
			if isSecret(d.Variable(), d.Key()) {
				val = "[redacted]"
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(name + "=" + val)
			if b.Len() >= MaxPayload {
				return truncate(b.String(), MaxPayload)
			}
		}
	}
	return truncate(b.String(), MaxPayload)
}

func isSecret(v variables.RuleVariable, key string) bool {
	switch v {
	case variables.RequestCookies, variables.RequestCookiesNames:
		return true
	case variables.RequestHeaders, variables.RequestHeadersNames:
		return secretHeaders[strings.ToLower(key)]
	}
	return false
}

// truncate cuts s to at most n bytes on a rune boundary and makes it valid UTF-8.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
