package report

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/taskguard/taskguard/internal/severity"
)

// TableOptions tune WriteTable.
type TableOptions struct {
	// Color adds ANSI colours (for a terminal).
	Color bool
	// All lists ignored findings too; by default only blocking and alerting ones.
	All bool
}

var severityColor = map[severity.Severity]string{severity.Critical: "\x1b[1;31m", severity.High: "\x1b[31m", severity.Medium: "\x1b[33m", severity.Low: "\x1b[36m"}

// WriteTable writes r for a terminal: the result, counts and the findings
// the gate blocks or alerts on.
func WriteTable(_ context.Context, w io.Writer, r *Report, opts TableOptions) error {
	paint := func(code, s string) string {
		if !opts.Color || code == "" {
			return s
		}
		return code + s + "\x1b[0m"
	}
	var b strings.Builder
	result := strings.ToUpper(r.Result)
	if r.Result == ResultBlocked {
		result = paint("\x1b[1;31m", result)
	} else {
		result = paint("\x1b[1;32m", result)
	}
	fmt.Fprintf(&b, "%s: %s (policy: %s)\n", r.subject(), result, strings.TrimSpace(r.Policy.Source+" "+r.Policy.Location))
	s := r.Summary
	fmt.Fprintf(&b, "Vulnerabilities: %d (CRITICAL %d, HIGH %d, MEDIUM %d, LOW %d, UNKNOWN %d)  Compliance: %d  Gate: %d blocking, %d alerts, %d accepted, %d ignored otherwise\n",
		s.Vulnerabilities.Total, s.Vulnerabilities.Critical, s.Vulnerabilities.High, s.Vulnerabilities.Medium, s.Vulnerabilities.Low, s.Vulnerabilities.Unknown,
		s.Compliance.Total, s.Blocked, s.Alerted, s.Accepted, s.Ignored-s.Accepted)
	for _, reason := range r.BlockReasons {
		fmt.Fprintf(&b, "blocked: %s\n", reason)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	header := false
	row := func(verdict, sev, id, what, detail string) {
		if !header {
			fmt.Fprintln(tw, "\nVERDICT\tSEVERITY\tID\tTARGET\tDETAIL")
			header = true
		}
		// Pad before painting so that escape codes do not break the columns.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", verdict, paint(severityColor[severity.Of(sev)], fmt.Sprintf("%-8s", sev)), id, what, detail)
	}
	for _, v := range r.Vulnerabilities {
		if v.Verdict.Action == ActionIgnore && !opts.All {
			continue
		}
		row(v.Verdict.Action, v.Severity, v.VulnerabilityID, v.PkgName+" "+v.InstalledVersion, "fixed in "+dash(v.FixedVersion))
	}
	for _, c := range r.Compliance {
		if c.Verdict.Action == ActionIgnore && !opts.All {
			continue
		}
		row(c.Verdict.Action, c.Severity, c.CheckID, c.Target, c.Message)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, e := range r.ExpiredExceptions {
		fmt.Fprintf(&b, "expired exception %s (%s): %s\n", e.ID, e.Expires, e.Reason)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", warn)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}
