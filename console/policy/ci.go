package policy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/taskguard/taskguard/internal/severity"
)

// Action is what the CI gate does with a finding.
type Action string

// The gate's actions, from least to most severe.
const (
	ActionIgnore Action = "ignore"
	ActionAlert  Action = "alert"
	ActionBlock  Action = "block"
)

// Valid reports whether a is a known action.
func (a Action) Valid() bool { return a == ActionIgnore || a == ActionAlert || a == ActionBlock }

// SeverityAtLeast reports whether severity s is at or above threshold t.
// Names are case-insensitive; an empty threshold is never reached.
func SeverityAtLeast(s, t string) bool {
	if t == "" {
		return false
	}
	return severity.AtLeast(s, t)
}

// ValidSeverity reports a known severity name (case-insensitive), or empty.
func ValidSeverity(s string) bool {
	return s == "" || severity.Valid(s)
}

// CIRule is a CI gate rule for images: the first rule whose scope matches the
// image (Scope.Images; Tasks and Containers are ignored) applies.
type CIRule struct {
	Name            string         `json:"name"`
	Scope           Scope          `json:"scope"`
	Vulnerabilities VulnRule       `json:"vulnerabilities"`
	Compliance      ComplianceRule `json:"compliance"`
}

// VulnRule sets the vulnerability thresholds.
type VulnRule struct {
	// AlertThreshold and BlockThreshold are severities (LOW, MEDIUM, HIGH,
	// CRITICAL): findings at or above them alert or block. Empty: never.
	AlertThreshold string `json:"alertThreshold,omitempty"`
	BlockThreshold string `json:"blockThreshold,omitempty"`
	// OnlyFixed counts only findings that have a fixed version.
	OnlyFixed bool `json:"onlyFixed,omitempty"`
	// GraceDays lets a finding whose fix was published less than this many
	// days ago alert instead of block.
	GraceDays int `json:"graceDays,omitempty"`
	// Exceptions ignore named vulnerabilities until they expire.
	Exceptions []Exception `json:"exceptions,omitempty"`
}

// ComplianceRule sets what each compliance check does.
type ComplianceRule struct {
	// Default applies to checks not named in Checks; empty means alert.
	Default Action `json:"default,omitempty"`
	// Checks maps check IDs (TG-TASK-001, ...) to an action.
	Checks map[string]Action `json:"checks,omitempty"`
	// Exceptions ignore named checks until they expire.
	Exceptions []Exception `json:"exceptions,omitempty"`
	// Custom are the user's own image checks; what they do when they fail is
	// set like any check's, in Checks by ID (else Default).
	Custom []CustomCheck `json:"custom,omitempty"`
}

// CustomCheck is a user-defined image compliance check with exactly one
// condition. Paths are absolute globs over the image's files.
type CustomCheck struct {
	// ID is the check's stable ID; "TG-" is reserved for taskguard's own.
	ID          string `json:"id"`
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Remediation string `json:"remediation,omitempty"`
	// FileExists fails the check when no file matches the glob.
	FileExists string `json:"fileExists,omitempty"`
	// FileAbsent fails the check when a file matches the glob.
	FileAbsent string `json:"fileAbsent,omitempty"`
	// Env fails the check when the image's ENV lacks the variable or its
	// value does not match the regular expression.
	Env *EnvCondition `json:"env,omitempty"`
}

// EnvCondition is an ENV variable that must exist and match Match (an RE2
// regular expression; empty means any value).
type EnvCondition struct {
	Name  string `json:"name"`
	Match string `json:"match,omitempty"`
}

// Exception ignores one vulnerability or check, optionally only for one
// package, until Expires (a date; empty never expires). Reason is required.
type Exception struct {
	ID      string `json:"id"`
	Package string `json:"package,omitempty"`
	Reason  string `json:"reason"`
	Expires Date   `json:"expires,omitzero"`
}

// Date is a calendar day, written "2026-12-31". An exception that expires on
// a day applies through the end of that day (UTC).
type Date struct{ time.Time }

// ParseDate reads "2006-01-02".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return Date{}, fmt.Errorf("date %q: use YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// MarshalJSON writes "2006-01-02".
func (d Date) MarshalJSON() ([]byte, error) { return []byte(`"` + d.Format(time.DateOnly) + `"`), nil }

// UnmarshalJSON reads "2006-01-02" (a full RFC 3339 time is accepted too).
func (d *Date) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		*d = Date{t.UTC().Truncate(24 * time.Hour)}
		return nil
	}
	pd, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = pd
	return nil
}

// Expired reports whether the exception no longer applies at now.
func (e Exception) Expired(now time.Time) bool {
	return !e.Expires.IsZero() && now.UTC().After(e.Expires.Add(24*time.Hour-time.Nanosecond))
}

func (e Exception) matches(id, pkg string) bool {
	return strings.EqualFold(e.ID, id) && (e.Package == "" || e.Package == pkg)
}

// VulnFinding is what the gate needs to know of a vulnerability finding.
type VulnFinding struct {
	ID           string
	Package      string
	Severity     string
	FixedVersion string
	// FixDate is when the fix was published; zero when unknown.
	FixDate time.Time
}

// ComplianceFinding is what the gate needs to know of a compliance finding.
type ComplianceFinding struct {
	CheckID  string
	Severity string
}

// Verdict is the gate's decision on one finding, with the reason in words.
type Verdict struct {
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// Exception is set when an exception decided the verdict (expired
	// exceptions are reported but do not apply).
	Exception *Exception `json:"exception,omitempty"`
}

// CIFor returns the first CI rule whose image scope matches image, or nil.
func (p *Policy) CIFor(image string) *CIRule {
	if p == nil {
		return nil
	}
	for i := range p.CI {
		if matchAny(p.CI[i].Scope.Images, image) || matchAny(p.CI[i].Scope.Images, repository(image)) {
			return &p.CI[i]
		}
	}
	return nil
}

// repository strips the tag or digest from an image reference.
func repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// DecideVulnerability decides one vulnerability finding at time now. extra holds
// exceptions from outside the policy (an ignore file).
func (r *CIRule) DecideVulnerability(f VulnFinding, now time.Time, extra []Exception) Verdict {
	v := r.Vulnerabilities
	if ex, ok := findException(slices.Concat(v.Exceptions, extra), f.ID, f.Package, now); ok {
		return Verdict{Action: ActionIgnore, Reason: fmt.Sprintf("exception: %s", ex.Reason), Exception: &ex}
	}
	if v.OnlyFixed && f.FixedVersion == "" {
		return Verdict{Action: ActionIgnore, Reason: "no fixed version yet (only-fixed)"}
	}
	sev := strings.ToUpper(f.Severity)
	if SeverityAtLeast(sev, v.BlockThreshold) {
		if v.GraceDays > 0 && !f.FixDate.IsZero() && now.Sub(f.FixDate) < time.Duration(v.GraceDays)*24*time.Hour {
			days := int(now.Sub(f.FixDate).Hours() / 24)
			return Verdict{Action: ActionAlert, Reason: fmt.Sprintf("%s at or above %s, but the fix is %d days old (grace %d days)", sev, strings.ToUpper(v.BlockThreshold), days, v.GraceDays)}
		}
		return Verdict{Action: ActionBlock, Reason: fmt.Sprintf("%s at or above the block threshold %s", sev, strings.ToUpper(v.BlockThreshold))}
	}
	if SeverityAtLeast(sev, v.AlertThreshold) {
		return Verdict{Action: ActionAlert, Reason: fmt.Sprintf("%s at or above the alert threshold %s", sev, strings.ToUpper(v.AlertThreshold))}
	}
	return Verdict{Action: ActionIgnore, Reason: fmt.Sprintf("%s below the thresholds", sev)}
}

// DecideCompliance decides one compliance finding at time now.
func (r *CIRule) DecideCompliance(f ComplianceFinding, now time.Time, extra []Exception) Verdict {
	c := r.Compliance
	if ex, ok := findException(slices.Concat(c.Exceptions, extra), f.CheckID, "", now); ok {
		return Verdict{Action: ActionIgnore, Reason: fmt.Sprintf("exception: %s", ex.Reason), Exception: &ex}
	}
	if a, ok := c.Checks[f.CheckID]; ok {
		return Verdict{Action: a, Reason: fmt.Sprintf("rule sets %s to %s", f.CheckID, a)}
	}
	a := c.Default
	if a == "" {
		a = ActionAlert
	}
	return Verdict{Action: a, Reason: fmt.Sprintf("default compliance action %s", a)}
}

func findException(list []Exception, id, pkg string, now time.Time) (Exception, bool) {
	for _, ex := range list {
		if ex.matches(id, pkg) && !ex.Expired(now) {
			return ex, true
		}
	}
	return Exception{}, false
}

// ExpiredExceptions returns the exceptions in list that have expired at now,
// so that a report can say they no longer apply.
func ExpiredExceptions(list []Exception, now time.Time) []Exception {
	var out []Exception
	for _, ex := range list {
		if ex.Expired(now) {
			out = append(out, ex)
		}
	}
	return out
}

func validateCI(add addFunc, rules []CIRule) {
	names := map[string]bool{}
	for i, r := range rules {
		f := fmt.Sprintf("ci[%d]", i)
		checkName(add, f, r.Name, names)
		checkScope(add, f+".scope", r.Scope)
		v := r.Vulnerabilities
		if !ValidSeverity(v.AlertThreshold) {
			add(f+".vulnerabilities.alertThreshold", "unknown severity %q (use LOW, MEDIUM, HIGH or CRITICAL)", v.AlertThreshold)
		}
		if !ValidSeverity(v.BlockThreshold) {
			add(f+".vulnerabilities.blockThreshold", "unknown severity %q (use LOW, MEDIUM, HIGH or CRITICAL)", v.BlockThreshold)
		}
		if v.GraceDays < 0 {
			add(f+".vulnerabilities.graceDays", "must not be negative")
		}
		checkExceptions(add, f+".vulnerabilities.exceptions", v.Exceptions)
		c := r.Compliance
		if c.Default != "" && !c.Default.Valid() {
			add(f+".compliance.default", "unknown action %q (use ignore, alert or block)", c.Default)
		}
		for id, a := range c.Checks {
			if !a.Valid() {
				add(fmt.Sprintf("%s.compliance.checks.%s", f, id), "unknown action %q (use ignore, alert or block)", a)
			}
		}
		checkExceptions(add, f+".compliance.exceptions", c.Exceptions)
		checkCustom(add, f+".compliance.custom", c.Custom)
	}
}

func checkCustom(add addFunc, f string, checks []CustomCheck) {
	ids := map[string]bool{}
	for i, c := range checks {
		cf := fmt.Sprintf("%s[%d]", f, i)
		switch {
		case strings.TrimSpace(c.ID) == "":
			add(cf+".id", "is required")
		case strings.HasPrefix(strings.ToUpper(c.ID), "TG-"):
			add(cf+".id", "%q: the TG- prefix is reserved for taskguard's checks", c.ID)
		case ids[c.ID]:
			add(cf+".id", "duplicate check ID %q", c.ID)
		}
		ids[c.ID] = true
		if strings.TrimSpace(c.Title) == "" {
			add(cf+".title", "is required")
		}
		if c.Severity == "" || !ValidSeverity(c.Severity) || strings.EqualFold(c.Severity, "UNKNOWN") {
			add(cf+".severity", "%q: use LOW, MEDIUM, HIGH or CRITICAL", c.Severity)
		}
		conds := 0
		for _, g := range []struct{ name, glob string }{{"fileExists", c.FileExists}, {"fileAbsent", c.FileAbsent}} {
			if g.glob == "" {
				continue
			}
			conds++
			if _, err := path.Match(g.glob, ""); err != nil || !strings.HasPrefix(g.glob, "/") {
				add(cf+"."+g.name, "%q is not an absolute glob such as /etc/nginx/*.conf", g.glob)
			}
		}
		if c.Env != nil {
			conds++
			if strings.TrimSpace(c.Env.Name) == "" {
				add(cf+".env.name", "is required")
			}
			if _, err := regexp.Compile(c.Env.Match); err != nil {
				add(cf+".env.match", "bad regular expression: %v", err)
			}
		}
		if conds != 1 {
			add(cf, "give exactly one condition: fileExists, fileAbsent or env")
		}
	}
}

func checkExceptions(add addFunc, f string, list []Exception) {
	for i, ex := range list {
		if strings.TrimSpace(ex.ID) == "" {
			add(fmt.Sprintf("%s[%d].id", f, i), "is required")
		}
		if strings.TrimSpace(ex.Reason) == "" {
			add(fmt.Sprintf("%s[%d].reason", f, i), "is required: say why the finding is accepted")
		}
	}
}
