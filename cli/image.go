package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/cli/pipeline"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/scan"
)

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Work with container images",
	}
	cmd.AddCommand(withTimeout(newImageScanCommand()))
	return cmd
}

type imageScanFlags struct {
	db           dbFlags
	input        string
	layout       string
	rootfs       string
	format       string
	output       string
	failOn       string
	skipDBUpdate bool
	lockfiles    bool
	includeDev   bool
	platform     string
	parallel     int
	maxFileSize  int64
}

func newImageScanCommand() *cobra.Command {
	var f imageScanFlags
	cmd := &cobra.Command{
		Use:   "scan [REF]",
		Short: "Scan an image for vulnerabilities",
		Long: `Scan an image for known vulnerabilities in its OS and language packages.

The image is a registry reference (credentials from the docker config and
credential helpers), a docker-archive tarball (--input), an OCI layout
directory (--layout) or an unpacked root filesystem (--rootfs). A path given
as REF is recognised as one of the last three.

Output: a table on a terminal, JSON otherwise (--format). Exit codes: 0 the
scan ran and nothing reached --fail-on, 1 findings at or above --fail-on,
2 the scan could not run.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageScan(cmd, args, &f)
		},
	}
	f.db.register(cmd)
	f.db.registerLayerCache(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.input, "input", "", "docker-archive tarball to scan")
	fl.StringVar(&f.layout, "layout", "", "OCI layout directory to scan")
	fl.StringVar(&f.rootfs, "rootfs", "", "root filesystem directory to scan")
	fl.StringVarP(&f.format, "format", "f", "", "output format: table, json, or an SBOM: cyclonedx (CycloneDX 1.6 JSON) or spdx-json (SPDX 2.3); default table on a terminal, else json")
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a finding has this severity or higher (LOW, MEDIUM, HIGH, CRITICAL)")
	fl.BoolVar(&f.skipDBUpdate, "skip-db-update", false, "use the cached vulnerability DB without checking for a new one")
	fl.StringVar(&f.platform, "platform", "", "platform to pick from a multi-platform image, os/arch[/variant] (default linux/amd64)")
	fl.IntVar(&f.parallel, "parallel", 0, "layers read at once (default: the number of CPUs)")
	fl.BoolVar(&f.includeDev, "include-dev-deps", false, "with --lockfiles, also report the packages lock files name for development only (devDependencies, dev groups; left out by default)")
	fl.BoolVar(&f.lockfiles, "lockfiles", false, "also read application lock files and manifests (package-lock.json, yarn.lock, pnpm-lock.yaml, requirements.txt, poetry.lock, Pipfile.lock, Gemfile.lock, composer.lock, Cargo.lock, packages.lock.json, gradle.lockfile, pom.xml, go.mod), not only installed packages")
	fl.Int64Var(&f.maxFileSize, "max-file-size", image.DefaultMaxFileSize, "largest file (bytes) read from the image; larger ones are skipped with a warning")
	return cmd
}

func runImageScan(cmd *cobra.Command, args []string, f *imageScanFlags) error {
	ctx := cmd.Context()
	ref, kind, err := f.source(args)
	if err != nil {
		return err
	}
	failOn := ""
	if f.failOn != "" {
		if failOn, err = scan.ParseSeverity(f.failOn); err != nil {
			return fmt.Errorf("--fail-on: %w", err)
		}
	}
	var out io.Writer = cmd.OutOrStdout()
	format := f.format
	if format == "" {
		format = "json"
		if f.output == "" && isTerminal(out) {
			format = "table"
		}
	}
	if format != "json" && format != "table" && !sbomFormat(format) {
		return fmt.Errorf("--format %q: want table, json, cyclonedx or spdx-json", format)
	}
	if err := image.CheckSource(ref, kind); err != nil {
		return err
	}
	iopts := image.Options{Kind: kind, Insecure: f.db.insecure, MaxFileSize: f.maxFileSize, Cache: f.db.layerCache(cmd)}
	if kind == image.KindRootFS {
		// A live root filesystem's kernel trees hold no packages.
		iopts.SkipDirs = []string{"proc", "sys", "dev"}
	}
	if f.platform != "" {
		p, err := v1.ParsePlatform(f.platform)
		if err != nil {
			return fmt.Errorf("--platform %q (want os/arch[/variant], e.g. linux/arm64): %w", f.platform, err)
		}
		iopts.Platform = p
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var analyzers []analyzer.Analyzer
	if f.lockfiles {
		analyzers = append(analyzer.All(), analyzer.Lockfiles()...)
	}
	if sbomFormat(format) {
		// An inventory needs no vulnerability DB.
		return writeImageSBOM(ctx, out, ref, iopts, analyzers, f.includeDev, f.parallel, logger, f.output, format)
	}
	db, err := openDB(ctx, cmd, &f.db, f.skipDBUpdate)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := scan.Image(ctx, ref, db, scan.Options{
		Image:       iopts,
		Analyzers:   analyzers,
		IncludeDev:  f.includeDev,
		Parallel:    f.parallel,
		ToolVersion: Version(),
		Logger:      logger,
	})
	if err == nil {
		err = pipeline.ErrIncomplete(ctx, "scan "+ref)
	}
	if err != nil {
		return err
	}
	if err := writeReport(ctx, out, f.output, format, rep); err != nil {
		return err
	}
	if failOn != "" {
		if bad := rep.AtOrAbove(failOn); len(bad) > 0 {
			return program.Blocked(fmt.Errorf("%d vulnerabilities at or above %s in %s", len(bad), failOn, ref))
		}
	}
	return nil
}

// writeReport writes rep in format to path, or to out when path is empty.
func writeReport(ctx context.Context, out io.Writer, path, format string, rep *scan.Report) error {
	write := scan.WriteJSON
	if format == "table" {
		write = scan.WriteTable
	}
	if path == "" {
		return write(ctx, out, rep)
	}
	file, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	if err := write(ctx, file, rep); err != nil {
		file.Close()
		return err
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

// source picks the image reference and its kind from the argument and flags.
func (f *imageScanFlags) source(args []string) (string, image.Kind, error) {
	var given []string
	ref, kind := "", image.Kind("")
	if len(args) == 1 {
		given = append(given, "REF")
		ref = args[0]
	}
	for _, s := range []struct {
		flag, value string
		kind        image.Kind
	}{{"--input", f.input, image.KindTarball}, {"--layout", f.layout, image.KindLayout}, {"--rootfs", f.rootfs, image.KindRootFS}} {
		if s.value != "" {
			given = append(given, s.flag)
			ref, kind = s.value, s.kind
		}
	}
	switch len(given) {
	case 0:
		return "", "", fmt.Errorf("image scan: name an image: REF, --input, --layout or --rootfs")
	case 1:
		return ref, kind, nil
	}
	return "", "", fmt.Errorf("image scan: give only one of %s", strings.Join(given, ", "))
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
