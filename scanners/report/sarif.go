package report

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/taskguard/taskguard/internal/severity"
)

// DefaultMaxSARIFResults keeps uploads within GitHub code scanning's limits
// (it keeps at most 5,000 results of a run).
const DefaultMaxSARIFResults = 5000

// SARIFOptions tune WriteSARIF.
type SARIFOptions struct {
	// ImageFile is the repository file image findings point at (a
	// Dockerfile); empty means "Dockerfile".
	ImageFile string
	// TaskFile is the repository file task findings point at; empty means the
	// report's task path.
	TaskFile string
	// MaxResults caps the results, most severe first; 0 means DefaultMaxSARIFResults.
	MaxResults int
	// InformationURI is the tool's home page.
	InformationURI string
}

// sarifLevel maps a severity to a SARIF level: critical and high are errors,
// medium a warning, low and unknown a note.
func sarifLevel(name string) string {
	switch severity.Of(name) {
	case severity.Critical, severity.High:
		return "error"
	case severity.Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the score GitHub reads to rank security alerts.
func securitySeverity(name string) string {
	switch severity.Of(name) {
	case severity.Critical:
		return "9.5"
	case severity.High:
		return "8.0"
	case severity.Medium:
		return "5.5"
	case severity.Low:
		return "2.0"
	}
	return "0.0"
}

type sarifResult struct {
	ruleID, severity, message, file string
	verdict                         Verdict
}

// rank orders results for the cap: blocking first, accepted last.
func (r sarifResult) rank() int {
	switch {
	case r.verdict.Action == ActionBlock:
		return 2
	case r.verdict.accepted():
		return 0
	}
	return 1
}

// gateText is the verdict in the words of a result's message.
func gateText(v Verdict) string {
	if v.accepted() {
		return "Gate: accepted, " + v.Accepted.Justification() + "."
	}
	return fmt.Sprintf("Gate: %s (%s).", v.Action, v.Reason)
}

// WriteSARIF writes r as SARIF 2.1.0 for GitHub code scanning: one rule per
// vulnerability ID or check ID, one result with one location per finding,
// blocking and more severe findings first, capped at MaxResults.
func WriteSARIF(_ context.Context, w io.Writer, r *Report, opts SARIFOptions) error {
	doc, err := sarif.New(sarif.Version210)
	if err != nil {
		return fmt.Errorf("write SARIF report: %w", err)
	}
	uri := opts.InformationURI
	if uri == "" {
		uri = "https://github.com/taskguard/taskguard"
	}
	run := sarif.NewRunWithInformationURI("taskguard", uri)
	if r.Tool.Version != "" {
		run.Tool.Driver.Version = &r.Tool.Version
	}
	imageFile := opts.ImageFile
	if imageFile == "" {
		imageFile = "Dockerfile"
	}
	taskFile := opts.TaskFile
	if taskFile == "" && r.Task != nil {
		taskFile = r.Task.Path
	}

	var results []sarifResult
	rules := map[string]bool{}
	for _, v := range r.Vulnerabilities {
		if !rules[v.VulnerabilityID] {
			rules[v.VulnerabilityID] = true
			help := fmt.Sprintf("%s\n%s\nSeverity: %s. Package: %s. Fixed version: %s.\n%s",
				v.VulnerabilityID, firstNonEmpty(v.Title, v.VulnerabilityID), v.Severity, v.PkgName, dash(v.FixedVersion), v.PrimaryURL)
			md := fmt.Sprintf("**%s** %s\n\n| Severity | Package | Fixed version |\n|---|---|---|\n| %s | %s | %s |\n\n%s",
				v.VulnerabilityID, mdEscape(firstNonEmpty(v.Title, v.Description)), v.Severity, v.PkgName, dash(v.FixedVersion), v.PrimaryURL)
			rule := run.AddRule(v.VulnerabilityID).
				WithName("Vulnerability").
				WithShortDescription(sarif.NewMultiformatMessageString(truncate(firstNonEmpty(v.Title, v.VulnerabilityID), 200))).
				WithFullDescription(sarif.NewMultiformatMessageString(truncate(firstNonEmpty(v.Description, v.Title, v.VulnerabilityID), 1000))).
				WithHelp(sarif.NewMultiformatMessageString(help).WithMarkdown(md)).
				WithProperties(sarif.Properties{"security-severity": securitySeverity(v.Severity), "tags": []string{"security", "vulnerability", strings.ToLower(v.Severity)}, "precision": "very-high"})
			if v.PrimaryURL != "" {
				rule.WithHelpURI(v.PrimaryURL)
			}
		}
		msg := fmt.Sprintf("%s in %s %s (installed %s, fixed in %s), found at %s. %s",
			v.VulnerabilityID, v.PkgType, v.PkgName, v.InstalledVersion, dash(v.FixedVersion), v.Location.Path, gateText(v.Verdict))
		results = append(results, sarifResult{v.VulnerabilityID, v.Severity, msg, imageFile, v.Verdict})
	}
	for _, c := range r.Compliance {
		if !rules[c.CheckID] {
			rules[c.CheckID] = true
			run.AddRule(c.CheckID).
				WithName(strings.ReplaceAll(c.Title, " ", "")).
				WithShortDescription(sarif.NewMultiformatMessageString(c.Title)).
				WithFullDescription(sarif.NewMultiformatMessageString(c.Title)).
				WithHelp(sarif.NewMultiformatMessageString("Remediation: " + c.Remediation).WithMarkdown("**Remediation:** " + mdEscape(c.Remediation))).
				WithProperties(sarif.Properties{"security-severity": securitySeverity(c.Severity), "tags": []string{"security", "compliance", c.Family}, "precision": "high"})
		}
		file := imageFile
		if c.Family == "task" && taskFile != "" {
			file = taskFile
		}
		msg := fmt.Sprintf("%s: %s (%s). %s", c.Title, c.Message, c.Target, gateText(c.Verdict))
		results = append(results, sarifResult{c.CheckID, c.Severity, msg, file, c.Verdict})
	}

	sort.SliceStable(results, func(i, j int) bool {
		if results[i].rank() != results[j].rank() {
			return results[i].rank() > results[j].rank()
		}
		return severity.Compare(results[i].severity, results[j].severity) > 0
	})
	limit := opts.MaxResults
	if limit <= 0 {
		limit = DefaultMaxSARIFResults
	}
	if len(results) > limit {
		results = results[:limit]
	}
	for _, res := range results {
		result := run.CreateResultForRule(res.ruleID).
			WithLevel(sarifLevel(res.severity)).
			WithMessage(sarif.NewTextMessage(res.message))
		result.AddLocation(sarif.NewLocationWithPhysicalLocation(
			sarif.NewPhysicalLocation().
				WithArtifactLocation(sarif.NewSimpleArtifactLocation(res.file)).
				WithRegion(sarif.NewSimpleRegion(1, 1))))
		result.Properties = sarif.Properties{"gate": res.verdict.Action}
		if res.verdict.accepted() {
			// An accepted finding is suppressed outside the code (in the
			// ignore file or the policy): code scanning shows it dismissed
			// instead of opening an alert the gate accepted.
			result.Properties["gate"] = "accepted"
			result.AddSuppression(suppression(res))
		}
	}
	doc.AddRun(run)
	if err := doc.PrettyWrite(w); err != nil {
		return fmt.Errorf("write SARIF report: %w", err)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// mdEscape keeps text from breaking Markdown tables and HTML.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "\n", " ", "\r", "")
	return r.Replace(s)
}

// suppression is an accepted result's external suppression: where it was
// accepted (the ignore file, else the policy rule), why and until when. Its
// guid is derived from the result and the acceptance, so that the same
// acceptance keeps the same guid from run to run (go-sarif writes location
// and guid as null when unset, which the schema refuses).
func suppression(res sarifResult) *sarif.Suppression {
	a := res.verdict.Accepted
	loc := sarif.NewLocation()
	switch {
	case a.Source == AcceptedByIgnoreFile && a.Location != "":
		loc.WithPhysicalLocation(sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(a.Location)))
	default:
		name := firstNonEmpty(a.Location, a.Source)
		loc.LogicalLocations = []*sarif.LogicalLocation{sarif.NewLogicalLocation().WithName(name).WithFullyQualifiedName(a.Source + "/" + name)}
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{res.ruleID, res.file, res.message, a.Source, a.Location, a.Reason, a.Expires}, "\x00")))
	sum[6] = sum[6]&0x0f | 0x50 // name-based UUID layout
	sum[8] = sum[8]&0x3f | 0x80
	guid := fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	return sarif.NewSuppression("external").
		WithStatus("accepted").
		WithLocation(loc).
		WithGuid(guid).
		WithJustifcation(a.Justification())
}
