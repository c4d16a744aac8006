package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// FieldError is a validation failure of one field, named by its JSON path
// (for example "runtime[0].processes.effect").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate checks the whole policy and returns every problem found, joined;
// each is a *FieldError. A policy that fails validation must never replace a
// good one.
func (p *Policy) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	names := map[string]bool{}
	for i, r := range p.Runtime {
		f := fmt.Sprintf("runtime[%d]", i)
		checkName(add, f, r.Name, names)
		checkScope(add, f+".scope", r.Scope)
		checkEffect(add, f+".processes.effect", r.Processes.Effect)
		if len(r.Processes.Denied) > 0 && len(r.Processes.Allowed) > 0 {
			add(f+".processes", "set either denied or allowed, not both")
		}
		checkGlobs(add, f+".processes.denied", r.Processes.Denied)
		checkGlobs(add, f+".processes.allowed", r.Processes.Allowed)
		n := r.Network
		checkEffect(add, f+".network.effect", n.Effect)
		checkGlobs(add, f+".network.deniedDomains", n.DeniedDomains)
		checkGlobs(add, f+".network.allowedDomains", n.AllowedDomains)
		checkDestinations(add, f+".network.deniedOutbound", n.DeniedOutbound)
		checkDestinations(add, f+".network.allowedOutbound", n.AllowedOutbound)
		checkDetectors(add, f+".detectors", r.Detectors)
	}
	wafNames := map[string]bool{}
	for i, r := range p.WAF {
		f := fmt.Sprintf("waf[%d]", i)
		checkName(add, f, r.Name, wafNames)
		checkScope(add, f+".scope", r.Scope)
		if r.ExternalPort == 0 {
			add(f+".externalPort", "must be a port between 1 and 65535")
		}
		if r.AppPort == 0 {
			add(f+".appPort", "must be a port between 1 and 65535")
		}
		if r.ExternalPort != 0 && r.ExternalPort == r.AppPort {
			add(f+".externalPort", "must differ from appPort %d", r.AppPort)
		}
		for prot, eff := range r.Protections {
			if !prot.Valid() {
				add(f+".protections", "unknown protection %q (known: %s)", prot, protectionList())
			}
			checkEffect(add, fmt.Sprintf("%s.protections.%s", f, prot), eff)
		}
		validateWAFExtras(add, f, r)
		for j, ex := range r.Exceptions {
			ef := fmt.Sprintf("%s.exceptions[%d]", f, j)
			if ex.Path != "" {
				if _, err := path.Match(ex.Path, ""); err != nil {
					add(ef+".path", "bad glob %q", ex.Path)
				}
			}
			for _, prot := range ex.Protections {
				if !prot.Valid() {
					add(ef+".protections", "unknown protection %q", prot)
				}
			}
		}
	}
	validateCI(add, p.CI)
	validateImages(add, p.Images)
	return errors.Join(errs...)
}

type addFunc func(field, format string, args ...any)

func checkName(add addFunc, f, name string, seen map[string]bool) {
	switch {
	case strings.TrimSpace(name) == "":
		add(f+".name", "is required")
	case seen[name]:
		add(f+".name", "duplicate rule name %q", name)
	}
	seen[name] = true
}

func checkScope(add addFunc, f string, s Scope) {
	checkGlobs(add, f+".tasks", s.Tasks)
	checkGlobs(add, f+".containers", s.Containers)
	checkGlobs(add, f+".images", s.Images)
}

func checkDetectors(add addFunc, f string, m map[string]Effect) {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if !slices.Contains(Detectors, id) {
			add(f+"."+id, "unknown detector (use one of %s)", strings.Join(Detectors, ", "))
			continue
		}
		if e := m[id]; e != EffectOff && e != EffectAlert && e != EffectPrevent && e != EffectDisable {
			add(f+"."+id, "unknown effect %q (use alert, prevent or off)", e)
		}
	}
}

func checkEffect(add addFunc, f string, e Effect) {
	if e != "" && !e.Valid() {
		add(f, "unknown effect %q (use disable, alert or prevent)", e)
	}
}

func checkGlobs(add addFunc, f string, globs []string) {
	for i, g := range globs {
		if strings.TrimSpace(g) == "" {
			add(fmt.Sprintf("%s[%d]", f, i), "is empty")
			continue
		}
		if _, err := path.Match(g, ""); err != nil {
			add(fmt.Sprintf("%s[%d]", f, i), "bad glob %q", g)
		}
	}
}

func checkDestinations(add addFunc, f string, ds []Destination) {
	for i, d := range ds {
		if d.CIDR == "" {
			continue
		}
		if _, err := netip.ParsePrefix(d.CIDR); err != nil {
			if _, err2 := netip.ParseAddr(d.CIDR); err2 != nil {
				add(fmt.Sprintf("%s[%d].cidr", f, i), "%q is not an IP address or CIDR", d.CIDR)
			}
		}
	}
}

func protectionList() string {
	s := make([]string, len(Protections))
	for i, p := range Protections {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// validateWAFExtras checks a WAF rule's body limit, API, rate-limit, source
// and bot settings.
func validateWAFExtras(add addFunc, f string, r WAFRule) {
	if r.BodyLimit < 0 || r.BodyLimit > MaxWAFBodyLimit {
		add(f+".bodyLimit", "must be between 1 and %d bytes (0 means %d)", MaxWAFBodyLimit, DefaultWAFBodyLimit)
	}
	checkEffect(add, f+".oversizeEffect", r.OversizeEffect)
	if a := r.API; a != nil {
		checkEffect(add, f+".api.effect", a.Effect)
		switch {
		case strings.TrimSpace(a.Spec) == "":
			add(f+".api.spec", "is required: an OpenAPI 3 document (JSON or YAML)")
		default:
			if _, err := LoadOpenAPI(a.Spec); err != nil {
				add(f+".api.spec", "%v", err)
			}
		}
	}
	if rl := r.RateLimit; rl != nil {
		checkEffect(add, f+".rateLimit.effect", rl.Effect)
		if rl.Requests < 1 || rl.Requests > 1_000_000 {
			add(f+".rateLimit.requests", "must be between 1 and 1000000")
		}
		if rl.PeriodSeconds < 1 || rl.PeriodSeconds > 86400 {
			add(f+".rateLimit.periodSeconds", "must be between 1 and 86400")
		}
	}
	if s := r.Sources; s != nil {
		checkEffect(add, f+".sources.effect", s.Effect)
		checkCIDRs(add, f+".sources.allowed", s.Allowed)
		checkCIDRs(add, f+".sources.denied", s.Denied)
	}
	checkEffect(add, f+".bots", r.Bots)
	if d := r.Detection; d != "" && d != WAFDetectionExtended && d != WAFDetectionCRS {
		add(f+".detection", fmt.Sprintf("must be %q or %q", WAFDetectionExtended, WAFDetectionCRS))
	}
	if r.Bots == EffectPrevent {
		add(f+".bots", "is alert-only: use disable or alert")
	}
	if h := r.ClientIPHeader; h != "" && strings.ContainsFunc(h, func(c rune) bool {
		return !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
	}) {
		add(f+".clientIPHeader", "%q is not a header name", h)
	}
	if r.ClientIPHeader != "" && len(r.TrustedProxies) == 0 {
		add(f+".trustedProxies", "is required with clientIPHeader: the load balancers' CIDRs whose header is believed")
	}
	checkCIDRs(add, f+".trustedProxies", r.TrustedProxies)
}

// checkCIDRs checks a list of IP addresses or CIDRs.
func checkCIDRs(add addFunc, f string, list []string) {
	for i, c := range list {
		if _, err := ParsePrefix(c); err != nil {
			add(fmt.Sprintf("%s[%d]", f, i), "%q is not an IP address or CIDR", c)
		}
	}
}

// ParsePrefix parses an IP address or CIDR; an address is its own /32 or /128.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
