package policy

import (
	"net/netip"
	"path"
	"strings"
)

// Reason says why a runtime check found a violation.
type Reason string

// The reasons a Decision can carry.
const (
	// ReasonNone: the action is allowed.
	ReasonNone Reason = ""
	// ReasonDenied: the action matched an entry of a denied list.
	ReasonDenied Reason = "denied"
	// ReasonNotAllowed: an allowed list is set and the action matched none of it.
	ReasonNotAllowed Reason = "not-allowed"
)

// Decision is the outcome of one runtime check. A zero Decision allows the
// action and reports nothing. Callers build the audit message from it.
type Decision struct {
	// Effect is what to do: EffectDisable (nothing), EffectAlert or EffectPrevent.
	Effect Effect
	// Reason is why the action violates the rule; ReasonNone when it does not.
	Reason Reason
	// Entry is the denied-list entry that matched, when Reason is ReasonDenied.
	Entry string
}

// Violation reports whether the decision asks for an audit (alert or prevent).
func (d Decision) Violation() bool {
	return d.Reason != ReasonNone && (d.Effect == EffectAlert || d.Effect == EffectPrevent)
}

// Prevent reports whether the action must be stopped.
func (d Decision) Prevent() bool { return d.Violation() && d.Effect == EffectPrevent }

func decide(effect Effect, reason Reason, entry string) Decision {
	if effect == "" || effect == EffectDisable || reason == ReasonNone {
		return Decision{}
	}
	return Decision{Effect: effect, Reason: reason, Entry: entry}
}

// CheckExec decides whether the program at path may start. Entries of the
// process lists match the program's absolute path or its base name. Aliases
// are other names of the same program (for example the path with symlinks
// resolved): a denied entry matching any name denies, an allowed entry
// matching any name allows.
func (r *RuntimeRule) CheckExec(path string, aliases ...string) Decision {
	if r == nil {
		return Decision{}
	}
	p := r.Processes
	names := append([]string{path}, aliases...)
	for _, n := range names {
		if e, ok := matchProgram(p.Denied, n); ok {
			return decide(p.Effect, ReasonDenied, e)
		}
	}
	if len(p.Allowed) == 0 {
		return Decision{}
	}
	for _, n := range names {
		if _, ok := matchProgram(p.Allowed, n); ok {
			return Decision{}
		}
	}
	return decide(p.Effect, ReasonNotAllowed, "")
}

func matchProgram(entries []string, prog string) (string, bool) {
	base := path.Base(prog)
	for _, e := range entries {
		target := base
		if strings.Contains(e, "/") {
			target = prog
		}
		if ok, _ := path.Match(e, target); ok {
			return e, true
		}
	}
	return "", false
}

// CheckDomain decides whether name may be resolved. A domain entry matches
// the domain itself and its subdomains; globs are allowed. Case and a
// trailing dot are ignored.
func (r *RuntimeRule) CheckDomain(name string) Decision {
	if r == nil {
		return Decision{}
	}
	n := r.Network
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if e, ok := matchDomain(n.DeniedDomains, name); ok {
		return decide(n.Effect, ReasonDenied, e)
	}
	if len(n.AllowedDomains) == 0 {
		return Decision{}
	}
	if _, ok := matchDomain(n.AllowedDomains, name); ok {
		return Decision{}
	}
	return decide(n.Effect, ReasonNotAllowed, "")
}

func matchDomain(entries []string, name string) (string, bool) {
	for _, e := range entries {
		d := strings.ToLower(strings.TrimSuffix(e, "."))
		if name == d || strings.HasSuffix(name, "."+d) {
			return e, true
		}
		if ok, _ := path.Match(d, name); ok {
			return e, true
		}
	}
	return "", false
}

// CheckConnect decides whether an outbound connection to addr may be made.
func (r *RuntimeRule) CheckConnect(addr netip.AddrPort) Decision {
	if r == nil {
		return Decision{}
	}
	n := r.Network
	ip := addr.Addr().Unmap()
	for _, d := range n.DeniedOutbound {
		if d.matches(ip, addr.Port()) {
			return decide(n.Effect, ReasonDenied, d.String())
		}
	}
	if len(n.AllowedOutbound) == 0 {
		return Decision{}
	}
	for _, d := range n.AllowedOutbound {
		if d.matches(ip, addr.Port()) {
			return Decision{}
		}
	}
	return decide(n.Effect, ReasonNotAllowed, "")
}

// CheckListen decides whether the app may listen on port.
func (r *RuntimeRule) CheckListen(port uint16) Decision {
	if r == nil {
		return Decision{}
	}
	n := r.Network
	for _, pr := range n.DeniedListeningPorts {
		if pr.Contains(port) {
			return decide(n.Effect, ReasonDenied, pr.String())
		}
	}
	if len(n.AllowedListeningPorts) == 0 {
		return Decision{}
	}
	for _, pr := range n.AllowedListeningPorts {
		if pr.Contains(port) {
			return Decision{}
		}
	}
	return decide(n.Effect, ReasonNotAllowed, "")
}

func (d Destination) matches(ip netip.Addr, port uint16) bool {
	if d.CIDR != "" {
		pfx, err := netip.ParsePrefix(d.CIDR)
		if err != nil {
			a, err2 := netip.ParseAddr(d.CIDR)
			if err2 != nil {
				return false
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if !pfx.Contains(ip) {
			return false
		}
	}
	if len(d.Ports) == 0 {
		return true
	}
	for _, pr := range d.Ports {
		if pr.Contains(port) {
			return true
		}
	}
	return false
}

// String returns "CIDR" or "CIDR:ports" for messages.
func (d Destination) String() string {
	s := d.CIDR
	if s == "" {
		s = "any"
	}
	if len(d.Ports) == 0 {
		return s
	}
	ps := make([]string, len(d.Ports))
	for i, p := range d.Ports {
		ps[i] = p.String()
	}
	return s + " port " + strings.Join(ps, ",")
}
