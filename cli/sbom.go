package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/cli/pipeline"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/sbom"
	"github.com/taskguard/taskguard/scanners/scan"
)

// sbomFormat reports whether format names an SBOM format of image scan.
func sbomFormat(format string) bool {
	return format == sbom.FormatCycloneDX || format == sbom.FormatSPDXJSON
}

// writeImageSBOM inventories the image ref (no vulnerability DB needed)
// and writes an SBOM in format to path, or to out when path is empty.
func writeImageSBOM(ctx context.Context, out io.Writer, ref string, iopts image.Options, analyzers []analyzer.Analyzer, includeDev bool, parallel int, logger *slog.Logger, path, format string) error {
	subj, err := sbom.FromImage(ctx, ref, sbom.ImageOptions{
		Image:       iopts,
		Analyze:     analyzer.Options{Analyzers: analyzers, Parallel: parallel, Logger: logger, IncludeDev: includeDev},
		ToolVersion: Version(),
	})
	if err == nil {
		err = pipeline.ErrIncomplete(ctx, "inventory "+ref)
	}
	if err != nil {
		return err
	}
	if path == "" {
		return sbom.Write(out, subj, format)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("SBOM %s: %w", path, err)
	}
	if err := sbom.Write(f, subj, format); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("SBOM %s: %w", path, err)
	}
	return nil
}

func newSBOMCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sbom",
		Short: "Work with software bills of materials",
	}
	cmd.AddCommand(withTimeout(newSBOMScanCommand()))
	return cmd
}

type sbomScanFlags struct {
	db           dbFlags
	format       string
	output       string
	failOn       string
	skipDBUpdate bool
}

func newSBOMScanCommand() *cobra.Command {
	var f sbomScanFlags
	cmd := &cobra.Command{
		Use:   "scan FILE",
		Short: "Match the packages of an SBOM against the vulnerability DB",
		Long: `Read a CycloneDX or SPDX JSON SBOM (taskguard's, Trivy's, Syft's, ...) and
match its packages against the vulnerability DB. Packages are known by their
package URLs (deb, apk, rpm, golang, npm, pypi, maven); components without
one are counted in a warning. The OS comes from the SBOM's operating-system
component, else from the distro qualifier of its OS package URLs.

Output and exit codes as for image scan.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSBOMScan(cmd, args[0], &f)
		},
	}
	f.db.register(cmd)
	fl := cmd.Flags()
	fl.StringVarP(&f.format, "format", "f", "", "output format: table or json (default table on a terminal, else json)")
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a finding has this severity or higher (LOW, MEDIUM, HIGH, CRITICAL)")
	fl.BoolVar(&f.skipDBUpdate, "skip-db-update", false, "use the cached vulnerability DB without checking for a new one")
	return cmd
}

func runSBOMScan(cmd *cobra.Command, path string, f *sbomScanFlags) error {
	ctx := cmd.Context()
	failOn := ""
	var err error
	if f.failOn != "" {
		if failOn, err = scan.ParseSeverity(f.failOn); err != nil {
			return fmt.Errorf("--fail-on: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	format := f.format
	if format == "" {
		format = "json"
		if f.output == "" && isTerminal(out) {
			format = "table"
		}
	}
	if format != "json" && format != "table" {
		return fmt.Errorf("--format %q: want table or json", format)
	}
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sbom scan: %w", err)
	}
	doc, err := sbom.Read(file)
	file.Close()
	if err != nil {
		return fmt.Errorf("sbom scan %s: %w", path, err)
	}
	db, err := openDB(ctx, cmd, &f.db, f.skipDBUpdate)
	if err != nil {
		return err
	}
	defer db.Close()
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	name := path
	if doc.Name != "" {
		name = doc.Name
	}
	rep, err := scan.Inventory(ctx, scan.Artifact{Name: name, Kind: scan.KindSBOM}, &doc.Inventory, db, scan.Options{ToolVersion: Version(), Logger: logger})
	if err == nil {
		err = pipeline.ErrIncomplete(ctx, "match "+path)
	}
	if err != nil {
		return err
	}
	if doc.Skipped > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d components of the %s document have no package URL taskguard matches; they were not checked", doc.Skipped, doc.Format))
	}
	if err := writeReport(ctx, out, f.output, format, rep); err != nil {
		return err
	}
	if failOn != "" {
		if bad := rep.AtOrAbove(failOn); len(bad) > 0 {
			return program.Blocked(fmt.Errorf("%d vulnerabilities at or above %s in %s", len(bad), failOn, path))
		}
	}
	return nil
}
