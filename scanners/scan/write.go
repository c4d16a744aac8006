package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes r as indented JSON (schema: docs/scan-json.md).
func WriteJSON(_ context.Context, w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

// maxTitle bounds the title column of the table.
const maxTitle = 60

// WriteTable writes r as a human-readable table.
func WriteTable(_ context.Context, w io.Writer, r *Report) error {
	var b strings.Builder
	osName := "unknown OS"
	if r.Artifact.OS != nil {
		osName = r.Artifact.OS.Family + " " + r.Artifact.OS.Name
	}
	fmt.Fprintf(&b, "%s (%s, %s)\n", r.Artifact.Name, r.Artifact.Kind, osName)
	s := r.Summary
	fmt.Fprintf(&b, "Packages: %d  Vulnerabilities: %d (CRITICAL: %d, HIGH: %d, MEDIUM: %d, LOW: %d, UNKNOWN: %d)\n",
		s.Packages, s.Total, s.Critical, s.High, s.Medium, s.Low, s.Unknown)
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", warn)
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PACKAGE\tTYPE\tINSTALLED\tFIXED\tVULNERABILITY\tSEVERITY\tSTATUS\tTITLE")
		for _, f := range r.Findings {
			title := []rune(oneLine(f.Title))
			if len(title) > maxTitle {
				title = append(title[:maxTitle-3], []rune("...")...)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				f.PkgName, f.PkgType, f.InstalledVersion, dash(f.FixedVersion), f.VulnerabilityID, f.Severity, f.Status, dash(string(title)))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write table report: %w", err)
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write table report: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
