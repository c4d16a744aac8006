package report

import (
	"fmt"
	"sort"
	"time"

	"github.com/taskguard/taskguard/internal/severity"
	"github.com/taskguard/taskguard/scanners/compliance"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/vuln"
)

// SchemaVersion of the JSON CI report. It changes only when a field is
// removed or changes meaning; new fields keep it.
const SchemaVersion = 1

// Results of the gate.
const (
	ResultPassed  = "passed"
	ResultBlocked = "blocked"
)

// Actions of a verdict (the gate's ignore, alert, block).
const (
	ActionIgnore = "ignore"
	ActionAlert  = "alert"
	ActionBlock  = "block"
)

// Report is one CI run: what was scanned, what was found, what the gate decided.
type Report struct {
	SchemaVersion int            `json:"schemaVersion"`
	Tool          scan.Tool      `json:"tool"`
	CreatedAt     time.Time      `json:"createdAt"`
	Result        string         `json:"result"`
	BlockReasons  []string       `json:"blockReasons,omitempty"`
	Policy        PolicySource   `json:"policy"`
	Image         *scan.Artifact `json:"image,omitempty"`
	DB            *scan.DBInfo   `json:"db,omitempty"`
	Task          *Task          `json:"task,omitempty"`
	Summary       Summary        `json:"summary"`

	Vulnerabilities []Vulnerability    `json:"vulnerabilities"`
	Compliance      []ComplianceResult `json:"compliance"`
	// ExpiredExceptions no longer apply; the findings they covered are judged again.
	ExpiredExceptions []Exception `json:"expiredExceptions,omitempty"`
	Warnings          []string    `json:"warnings,omitempty"`
	// ProtectedTask is the path the protected task definition was written to.
	ProtectedTask string `json:"protectedTask,omitempty"`
}

// PolicySource says where the gate's rules came from.
type PolicySource struct {
	// Source is "console", "file" or "default" (the embedded default policy).
	Source   string `json:"source"`
	Location string `json:"location,omitempty"`
	// Rule is the name of the CI rule that applied to the image.
	Rule string `json:"rule,omitempty"`
}

// Task names the task definition that was checked.
type Task struct {
	Path   string `json:"path"`
	Family string `json:"family"`
}

// Verdict is the gate's decision on one finding.
type Verdict struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
	// Accepted is set when an exception (the ignore file's or the policy's)
	// accepted the finding; Action is then ActionIgnore.
	Accepted *Acceptance `json:"accepted,omitempty"`
}

// Sources of an acceptance.
const (
	AcceptedByIgnoreFile = "ignore-file"
	AcceptedByPolicy     = "policy"
)

// Acceptance says who accepted a finding, why and until when.
type Acceptance struct {
	// Source is AcceptedByIgnoreFile or AcceptedByPolicy.
	Source string `json:"source"`
	// Location is the ignore file's path or the policy rule's name.
	Location string `json:"location,omitempty"`
	Reason   string `json:"reason"`
	// Expires is the last day the acceptance applies (YYYY-MM-DD); empty: never expires.
	Expires string `json:"expires,omitempty"`
}

// accepted reports whether the verdict accepts the finding through an exception.
func (v Verdict) accepted() bool { return v.Action == ActionIgnore && v.Accepted != nil }

// Justification is the acceptance in words: the reason, who accepted it and
// until when.
func (a *Acceptance) Justification() string {
	by := "the policy"
	if a.Source == AcceptedByIgnoreFile {
		by = "the ignore file"
	}
	if a.Location != "" {
		by += " " + a.Location
	}
	until := "does not expire"
	if a.Expires != "" {
		until = "expires " + a.Expires
	}
	return fmt.Sprintf("%s (accepted in %s; %s)", a.Reason, by, until)
}

// Vulnerability is a vulnerability finding with its verdict.
type Vulnerability struct {
	vuln.Finding
	Verdict Verdict `json:"verdict"`
}

// ComplianceResult is a compliance finding with its verdict.
type ComplianceResult struct {
	compliance.Finding
	Verdict Verdict `json:"verdict"`
}

// Exception is an accepted finding from the policy or the ignore file.
type Exception struct {
	ID      string `json:"id"`
	Package string `json:"package,omitempty"`
	Reason  string `json:"reason"`
	Expires string `json:"expires,omitempty"`
}

// Counts counts findings by severity.
type Counts struct {
	Total    int `json:"total"`
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Unknown  int `json:"unknown"`
}

func (c *Counts) add(name string) {
	c.Total++
	switch severity.Of(name) {
	case severity.Critical:
		c.Critical++
	case severity.High:
		c.High++
	case severity.Medium:
		c.Medium++
	case severity.Low:
		c.Low++
	default:
		c.Unknown++
	}
}

// Summary counts the findings and the verdicts. Vulnerabilities and
// Compliance count every finding, whatever the gate decided; the
// By-verdict counts split them.
type Summary struct {
	Vulnerabilities Counts `json:"vulnerabilities"`
	Compliance      Counts `json:"compliance"`
	// Blocked, Alerted and Ignored count findings (vulnerabilities and
	// compliance) by the gate's action; they add up to all findings.
	Blocked int `json:"blocked"`
	Alerted int `json:"alerted"`
	Ignored int `json:"ignored"`
	// Accepted counts the ignored findings that an exception accepted (the
	// ignore file's or the policy's); it is part of Ignored.
	Accepted int `json:"accepted"`
	// VulnerabilitiesBlocked, VulnerabilitiesAlerted and
	// VulnerabilitiesAccepted count vulnerabilities by severity for each
	// verdict.
	VulnerabilitiesBlocked  Counts `json:"vulnerabilitiesBlocked"`
	VulnerabilitiesAlerted  Counts `json:"vulnerabilitiesAlerted"`
	VulnerabilitiesAccepted Counts `json:"vulnerabilitiesAccepted"`
}

var actionRank = map[string]int{ActionBlock: 2, ActionAlert: 1}

// Finish sorts the findings (blocking first, then by severity), fills the
// summary and sets the result from the verdicts.
func (r *Report) Finish() {
	if r.Vulnerabilities == nil {
		r.Vulnerabilities = []Vulnerability{}
	}
	if r.Compliance == nil {
		r.Compliance = []ComplianceResult{}
	}
	sort.SliceStable(r.Vulnerabilities, func(i, j int) bool {
		a, b := r.Vulnerabilities[i], r.Vulnerabilities[j]
		if actionRank[a.Verdict.Action] != actionRank[b.Verdict.Action] {
			return actionRank[a.Verdict.Action] > actionRank[b.Verdict.Action]
		}
		if c := severity.Compare(a.Severity, b.Severity); c != 0 {
			return c > 0
		}
		if a.PkgName != b.PkgName {
			return a.PkgName < b.PkgName
		}
		return a.VulnerabilityID < b.VulnerabilityID
	})
	sort.SliceStable(r.Compliance, func(i, j int) bool {
		a, b := r.Compliance[i], r.Compliance[j]
		if actionRank[a.Verdict.Action] != actionRank[b.Verdict.Action] {
			return actionRank[a.Verdict.Action] > actionRank[b.Verdict.Action]
		}
		return severity.Compare(a.Severity, b.Severity) > 0
	})
	s := Summary{}
	count := func(v Verdict) {
		switch v.Action {
		case ActionBlock:
			s.Blocked++
		case ActionAlert:
			s.Alerted++
		default:
			s.Ignored++
			if v.accepted() {
				s.Accepted++
			}
		}
	}
	for _, v := range r.Vulnerabilities {
		s.Vulnerabilities.add(v.Severity)
		count(v.Verdict)
		switch {
		case v.Verdict.Action == ActionBlock:
			s.VulnerabilitiesBlocked.add(v.Severity)
		case v.Verdict.Action == ActionAlert:
			s.VulnerabilitiesAlerted.add(v.Severity)
		case v.Verdict.accepted():
			s.VulnerabilitiesAccepted.add(v.Severity)
		}
	}
	for _, c := range r.Compliance {
		s.Compliance.add(c.Severity)
		count(c.Verdict)
	}
	r.Summary = s
	r.Result = ResultPassed
	if s.Blocked > 0 {
		r.Result = ResultBlocked
	}
}

// subject names what the run checked: the image, else the task definition.
func (r *Report) subject() string {
	switch {
	case r.Image != nil:
		return r.Image.Name
	case r.Task != nil:
		return "task definition " + r.Task.Path
	}
	return "scan"
}
