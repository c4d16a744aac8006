// Package policy is taskguard's policy model: the runtime (App Embedded) rules that
// defenders enforce, the WAF (CNAF) rules the defender's proxy applies, and their
// scoping, validation and first-match selection.
//
// The console serves this model, the defender enforces it and the CLI gates with it,
// so the package imports no server code. It is not a store: persistence and
// revision history live in the console.
package policy

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Effect is what a rule does when it matches.
type Effect string

// The effects a runtime or WAF rule can take.
const (
	// EffectDisable turns the check off: nothing is enforced or reported.
	EffectDisable Effect = "disable"
	// EffectAlert lets the action happen and records an audit.
	EffectAlert Effect = "alert"
	// EffectPrevent stops the action before it takes effect and records an audit.
	EffectPrevent Effect = "prevent"
)

// Valid reports whether e is a known effect. The empty effect is not valid;
// callers that allow an omitted effect treat it as EffectDisable first.
func (e Effect) Valid() bool {
	switch e {
	case EffectDisable, EffectAlert, EffectPrevent:
		return true
	}
	return false
}

// Identity names one container of one task: what scopes are matched against.
type Identity struct {
	TaskFamily string `json:"taskFamily"`
	Container  string `json:"container"`
	Image      string `json:"image"`
}

// Scope selects the tasks, containers and images a rule applies to. Each list
// holds glob patterns (path.Match syntax, "*" matches anything); an empty list
// matches everything. All three lists must match.
type Scope struct {
	Tasks      []string `json:"tasks,omitempty"`
	Containers []string `json:"containers,omitempty"`
	Images     []string `json:"images,omitempty"`
}

// Matches reports whether id is inside the scope.
func (s Scope) Matches(id Identity) bool {
	return matchAny(s.Tasks, id.TaskFamily) && matchAny(s.Containers, id.Container) && matchAny(s.Images, id.Image)
}

func matchAny(patterns []string, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok || p == "*" {
			return true
		}
	}
	return false
}

// Policy is the whole document a console serves to defenders.
type Policy struct {
	// Revision increases with every change; defenders use it to tell new from old.
	Revision int64 `json:"revision"`
	// Runtime holds the App Embedded rules, ordered: the first matching rule wins.
	Runtime []RuntimeRule `json:"runtime,omitempty"`
	// WAF holds the CNAF rules, ordered: the first matching rule per external port wins.
	WAF []WAFRule `json:"waf,omitempty"`
	// CI holds the CI gate rules for images, ordered: the first matching rule wins.
	CI []CIRule `json:"ci,omitempty"`
	// Images holds the alert rules for images running in tasks, ordered: the
	// first matching rule wins.
	Images []ImageRule `json:"images,omitempty"`
}

// RuntimeRule is one App Embedded rule.
type RuntimeRule struct {
	Name      string        `json:"name"`
	Scope     Scope         `json:"scope"`
	Processes ProcessPolicy `json:"processes"`
	Network   NetworkPolicy `json:"network"`
	// Detectors sets the effect of each built-in threat detector by its ID
	// (see Detectors): "alert", "prevent" or "off" ("disable" too). A
	// detector not named here, and every detector when the section is
	// absent, runs in alert mode.
	Detectors map[string]Effect `json:"detectors,omitempty"`
}

// EffectOff is the detectors' word for EffectDisable.
const EffectOff Effect = "off"

// Detectors are the IDs of the defender's built-in threat detectors (the
// keys of RuntimeRule.Detectors); agent/detect implements them.
var Detectors = []string{
	"fileless-exec", "tempdir-exec", "drift", "reverse-shell",
	"crypto-miner", "netcat-listener", "shell-listener", "network-scanner", "package-manager",
	"process-injection", "account-file-write", "credential-file-access",
}

// DetectorEffect is what the rule does with a finding of detector id:
// EffectAlert unless the rule's detectors section says otherwise (a nil rule
// alerts too). "off" comes back as EffectDisable.
func (r *RuntimeRule) DetectorEffect(id string) Effect {
	if r == nil {
		return EffectAlert
	}
	e, ok := r.Detectors[id]
	switch {
	case !ok || e == "":
		return EffectAlert
	case e == EffectOff:
		return EffectDisable
	}
	return e
}

// ProcessPolicy decides which programs may start. With Allowed set, any program
// not in it is denied; otherwise only the Denied entries are. Entries are a
// program name ("mkdir") or an absolute path ("/bin/mkdir"), globs allowed.
type ProcessPolicy struct {
	Effect  Effect   `json:"effect,omitempty"`
	Denied  []string `json:"denied,omitempty"`
	Allowed []string `json:"allowed,omitempty"`
}

// NetworkPolicy decides DNS resolution, outbound connections and listening ports.
// A domain entry matches the domain and its subdomains ("yahoo.com" matches
// "www.yahoo.com"); globs are allowed ("*.example.org").
type NetworkPolicy struct {
	Effect          Effect        `json:"effect,omitempty"`
	DeniedDomains   []string      `json:"deniedDomains,omitempty"`
	AllowedDomains  []string      `json:"allowedDomains,omitempty"`
	DeniedOutbound  []Destination `json:"deniedOutbound,omitempty"`
	AllowedOutbound []Destination `json:"allowedOutbound,omitempty"`
	// AllowedListeningPorts, when set, makes listening on any other port a violation.
	AllowedListeningPorts []PortRange `json:"allowedListeningPorts,omitempty"`
	DeniedListeningPorts  []PortRange `json:"deniedListeningPorts,omitempty"`
}

// Destination is an outbound address range and optional ports. An empty CIDR
// means any address; no ports means any port.
type Destination struct {
	CIDR  string      `json:"cidr,omitempty"`
	Ports []PortRange `json:"ports,omitempty"`
}

// PortRange is an inclusive range of TCP/UDP ports. In JSON it is written as
// a number (80) or a string ("80", "8000-8080").
type PortRange struct {
	Start, End uint16
}

// Contains reports whether port is inside the range.
func (r PortRange) Contains(port uint16) bool { return port >= r.Start && port <= r.End }

// String returns "80" or "8000-8080".
func (r PortRange) String() string {
	if r.Start == r.End {
		return strconv.Itoa(int(r.Start))
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End)
}

// MarshalJSON writes a single port as a number and a range as a string.
func (r PortRange) MarshalJSON() ([]byte, error) {
	if r.Start == r.End {
		return []byte(strconv.Itoa(int(r.Start))), nil
	}
	return json.Marshal(r.String())
}

// UnmarshalJSON reads 80, "80" or "8000-8080".
func (r *PortRange) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	pr, err := ParsePortRange(s)
	if err != nil {
		return err
	}
	*r = pr
	return nil
}

// ParsePortRange parses "80" or "8000-8080". Port 0 is not allowed.
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	start, err := parsePort(lo)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
	}
	end := start
	if isRange {
		if end, err = parsePort(hi); err != nil {
			return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
		}
	}
	if end < start {
		return PortRange{}, fmt.Errorf("port range %q: end is below start", s)
	}
	return PortRange{Start: start, End: end}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port between 1 and 65535", s)
	}
	return uint16(n), nil
}

// Protection names one family of WAF detections.
type Protection string

// The WAF protections a rule can switch on, each mapped by the defender to OWASP CRS rule families.
const (
	ProtectionSQLi          Protection = "sqli"
	ProtectionXSS           Protection = "xss"
	ProtectionCmdi          Protection = "cmdi"
	ProtectionLFI           Protection = "lfi"
	ProtectionCodeInjection Protection = "code-injection"
	ProtectionAttackTools   Protection = "attack-tools"
	ProtectionShellshock    Protection = "shellshock"
	ProtectionProtocol      Protection = "protocol"
)

// Protections lists every known protection in a stable order.
var Protections = []Protection{
	ProtectionSQLi, ProtectionXSS, ProtectionCmdi, ProtectionLFI,
	ProtectionCodeInjection, ProtectionAttackTools, ProtectionShellshock, ProtectionProtocol,
}

// Valid reports whether p is a known protection.
func (p Protection) Valid() bool {
	for _, q := range Protections {
		if p == q {
			return true
		}
	}
	return false
}

// WAFRule is one CNAF rule: the defender listens on ExternalPort, inspects each
// request and forwards clean traffic to 127.0.0.1:AppPort.
type WAFRule struct {
	Name         string                `json:"name"`
	Scope        Scope                 `json:"scope"`
	ExternalPort uint16                `json:"externalPort"`
	AppPort      uint16                `json:"appPort"`
	Protections  map[Protection]Effect `json:"protections"`
	Exceptions   []WAFException        `json:"exceptions,omitempty"`
	// BodyLimit is how many request-body bytes are inspected, whole (0
	// means DefaultWAFBodyLimit, Coraza's own; at most MaxWAFBodyLimit).
	BodyLimit int64 `json:"bodyLimit,omitempty"`
	// OversizeEffect decides a body larger than BodyLimit: prevent answers
	// 413 with an audit; alert inspects the first BodyLimit bytes, forwards
	// the body and audits that the rest was not inspected; disable does the
	// same without the audit. Empty means the strongest effect among
	// Protections.
	OversizeEffect Effect `json:"oversizeEffect,omitempty"`
	// API enforces an OpenAPI 3 description of the app (protection "api").
	API *WAFAPI `json:"api,omitempty"`
	// RateLimit caps the requests of each client (protection "rate-limit").
	RateLimit *WAFRateLimit `json:"rateLimit,omitempty"`
	// Sources allows or denies client addresses (protection "sources").
	Sources *WAFSources `json:"sources,omitempty"`
	// Bots reports requests that look automated: scanner user agents and
	// missing browser headers (protection "bots"). Alert-only: disable or alert.
	Bots Effect `json:"bots,omitempty"`
	// ClientIPHeader names a header carrying the client address, such as
	// X-Forwarded-For; it is believed only from TrustedProxies. Rate limits
	// and source lists apply to that address.
	ClientIPHeader string `json:"clientIPHeader,omitempty"`
	// TrustedProxies are the CIDRs of load balancers whose ClientIPHeader is
	// believed.
	TrustedProxies []string `json:"trustedProxies,omitempty"`
	// Detection chooses the attack detection: WAFDetectionExtended (the
	// default, "") adds CRS rules on the URL path and client-set headers
	// and selected rules above paranoia level 1, measured to add no false
	// positive on agent/waf's benign corpus; WAFDetectionCRS is the Core
	// Rule Set at paranoia level 1 alone.
	Detection WAFDetection `json:"detection,omitempty"`
}

// WAFDetection is a WAF rule's attack detection setting.
type WAFDetection string

// WAF detection settings.
const (
	WAFDetectionExtended WAFDetection = "extended"
	WAFDetectionCRS      WAFDetection = "crs-pl1"
)

// Bounds of WAFRule.BodyLimit.
const (
	// DefaultWAFBodyLimit is the body inspection limit of a rule that sets
	// none: Coraza's recommended SecRequestBodyLimit (12.5 MiB).
	DefaultWAFBodyLimit = 13107200
	// MaxWAFBodyLimit is the largest body inspection limit a rule may set.
	MaxWAFBodyLimit = 128 << 20
	// MaxWAFAPISpec bounds the size of an OpenAPI document in a rule.
	MaxWAFAPISpec = 4 << 20
)

// WAFAPI is the API protection of a WAF rule: requests are checked against
// an OpenAPI 3 document (paths, methods, parameters and JSON bodies).
type WAFAPI struct {
	Effect Effect `json:"effect"`
	// Spec is the OpenAPI 3 document, JSON or YAML.
	Spec string `json:"spec"`
}

// WAFRateLimit allows each client Requests requests per PeriodSeconds (a
// token bucket that refills evenly); more get 429 under prevent.
type WAFRateLimit struct {
	Effect        Effect `json:"effect"`
	Requests      int    `json:"requests"`
	PeriodSeconds int    `json:"periodSeconds"`
}

// WAFSources lists client addresses (IP addresses or CIDRs). A client in
// Denied, or outside a non-empty Allowed, is refused (403 under prevent).
type WAFSources struct {
	Effect  Effect   `json:"effect"`
	Allowed []string `json:"allowed,omitempty"`
	Denied  []string `json:"denied,omitempty"`
}

// WAFException turns protections off for matching requests. Path is a glob over
// the URL path; Parameter, when set, limits it to one query/body parameter;
// empty Protections means all of them.
type WAFException struct {
	Path        string       `json:"path,omitempty"`
	Parameter   string       `json:"parameter,omitempty"`
	Protections []Protection `json:"protections,omitempty"`
}

// RuntimeFor returns the first runtime rule whose scope matches id, or nil when
// none does (then nothing is enforced or reported).
func (p *Policy) RuntimeFor(id Identity) *RuntimeRule {
	if p == nil {
		return nil
	}
	for i := range p.Runtime {
		if p.Runtime[i].Scope.Matches(id) {
			return &p.Runtime[i]
		}
	}
	return nil
}

// WAFFor returns, for each external port, the first WAF rule whose scope
// matches id, in rule order.
func (p *Policy) WAFFor(id Identity) []WAFRule {
	if p == nil {
		return nil
	}
	var out []WAFRule
	seen := map[uint16]bool{}
	for _, r := range p.WAF {
		if !r.Scope.Matches(id) || seen[r.ExternalPort] {
			continue
		}
		seen[r.ExternalPort] = true
		out = append(out, r)
	}
	return out
}

// WAFForTask returns, for each external port, the first WAF rule whose task
// patterns match family. The defender's WAF fronts the whole task, so the
// container and image patterns of a WAF rule's scope are not consulted.
func (p *Policy) WAFForTask(family string) []WAFRule {
	if p == nil {
		return nil
	}
	var out []WAFRule
	seen := map[uint16]bool{}
	for _, r := range p.WAF {
		if !matchAny(r.Scope.Tasks, family) || seen[r.ExternalPort] {
			continue
		}
		seen[r.ExternalPort] = true
		out = append(out, r)
	}
	return out
}
