package report

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// MarkdownOptions tune WriteMarkdown.
type MarkdownOptions struct {
	// MaxRows bounds each table (GitHub job summaries are limited to 1 MiB);
	// 0 means 200.
	MaxRows int
}

// WriteMarkdown writes r for a GitHub job summary: the result, counts by
// severity, the blocking findings first, and the rest in collapsible details.
func WriteMarkdown(_ context.Context, w io.Writer, r *Report, opts MarkdownOptions) error {
	maxRows := opts.MaxRows
	if maxRows <= 0 {
		maxRows = 200
	}
	var b strings.Builder
	icon := "✅"
	if r.Result == ResultBlocked {
		icon = "❌"
	}
	target := "`" + mdEscape(r.subject()) + "`"
	fmt.Fprintf(&b, "## %s taskguard: %s %s\n\n", icon, target, r.Result)
	if r.Task != nil {
		fmt.Fprintf(&b, "Task definition `%s` (family `%s`). ", mdEscape(r.Task.Path), mdEscape(r.Task.Family))
	}
	fmt.Fprintf(&b, "Policy: %s", r.Policy.Source)
	if r.Policy.Location != "" {
		fmt.Fprintf(&b, " (`%s`)", mdEscape(r.Policy.Location))
	}
	if r.Policy.Rule != "" {
		fmt.Fprintf(&b, ", rule `%s`", mdEscape(r.Policy.Rule))
	}
	b.WriteString(".\n\n")
	for _, reason := range r.BlockReasons {
		fmt.Fprintf(&b, "> **Blocked:** %s\n", mdEscape(reason))
	}
	if len(r.BlockReasons) > 0 {
		b.WriteString("\n")
	}

	s := r.Summary
	b.WriteString("| | Critical | High | Medium | Low | Unknown | Total |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		c    Counts
	}{{"Vulnerabilities", s.Vulnerabilities}, {"Compliance", s.Compliance}} {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d |\n", row.name, row.c.Critical, row.c.High, row.c.Medium, row.c.Low, row.c.Unknown, row.c.Total)
	}
	fmt.Fprintf(&b, "\nGate: **%d blocking**, %d alerts, %d accepted, %d ignored otherwise.", s.Blocked, s.Alerted, s.Accepted, s.Ignored-s.Accepted)
	if a := s.VulnerabilitiesAccepted; a.Total > 0 {
		fmt.Fprintf(&b, " Accepted vulnerabilities: %d critical, %d high, %d medium, %d low, %d unknown (counted in the table above).", a.Critical, a.High, a.Medium, a.Low, a.Unknown)
	}
	b.WriteString("\n")

	var blockV, restV []Vulnerability
	for _, v := range r.Vulnerabilities {
		if v.Verdict.Action == ActionBlock {
			blockV = append(blockV, v)
		} else {
			restV = append(restV, v)
		}
	}
	var blockC, restC []ComplianceResult
	for _, c := range r.Compliance {
		if c.Verdict.Action == ActionBlock {
			blockC = append(blockC, c)
		} else {
			restC = append(restC, c)
		}
	}
	if len(blockV)+len(blockC) > 0 {
		b.WriteString("\n### Blocking findings\n\n")
		writeVulnTable(&b, blockV, maxRows)
		writeComplianceTable(&b, blockC, maxRows)
	}
	if len(restV) > 0 {
		fmt.Fprintf(&b, "\n<details><summary>Other vulnerabilities (%d)</summary>\n\n", len(restV))
		writeVulnTable(&b, restV, maxRows)
		b.WriteString("\n</details>\n")
	}
	if len(restC) > 0 {
		fmt.Fprintf(&b, "\n<details><summary>Other compliance findings (%d)</summary>\n\n", len(restC))
		writeComplianceTable(&b, restC, maxRows)
		b.WriteString("\n</details>\n")
	}
	if len(r.ExpiredExceptions) > 0 {
		b.WriteString("\n### Expired exceptions\n\nThese no longer apply; renew them or fix the findings:\n\n")
		for _, e := range r.ExpiredExceptions {
			fmt.Fprintf(&b, "- `%s` expired %s: %s\n", mdEscape(e.ID), e.Expires, mdEscape(e.Reason))
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "\n> ⚠️ %s\n", mdEscape(warn))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write Markdown report: %w", err)
	}
	return nil
}

func writeVulnTable(b *strings.Builder, vs []Vulnerability, maxRows int) {
	if len(vs) == 0 {
		return
	}
	b.WriteString("| Vulnerability | Severity | Package | Installed | Fixed | Verdict |\n|---|---|---|---|---|---|\n")
	for i, v := range vs {
		if i == maxRows {
			fmt.Fprintf(b, "\n…and %d more (see the JSON report).\n", len(vs)-maxRows)
			break
		}
		id := mdEscape(v.VulnerabilityID)
		if v.PrimaryURL != "" {
			id = fmt.Sprintf("[%s](%s)", id, v.PrimaryURL)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", id, v.Severity, mdEscape(v.PkgName), mdEscape(v.InstalledVersion), mdEscape(dash(v.FixedVersion)), mdVerdict(v.Verdict))
	}
}

func writeComplianceTable(b *strings.Builder, cs []ComplianceResult, maxRows int) {
	if len(cs) == 0 {
		return
	}
	b.WriteString("\n| Check | Severity | Target | Finding | Verdict |\n|---|---|---|---|---|\n")
	for i, c := range cs {
		if i == maxRows {
			fmt.Fprintf(b, "\n…and %d more (see the JSON report).\n", len(cs)-maxRows)
			break
		}
		fmt.Fprintf(b, "| %s %s | %s | %s | %s | %s |\n", c.CheckID, mdEscape(c.Title), c.Severity, mdEscape(c.Target), mdEscape(c.Message), mdVerdict(c.Verdict))
	}
}

// mdVerdict is a verdict cell: "accepted: why (who; until)" for an accepted
// finding, else "action: reason".
func mdVerdict(v Verdict) string {
	if v.accepted() {
		return "accepted: " + mdEscape(v.Accepted.Justification())
	}
	return v.Action + ": " + mdEscape(v.Reason)
}
