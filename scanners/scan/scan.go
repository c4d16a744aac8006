package scan

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskguard/taskguard/internal/severity"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/vuln"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// SchemaVersion is the version of the JSON report schema. It changes only
// when a field is removed or changes meaning; new fields keep it.
const SchemaVersion = 1

// Report is the result of one scan.
type Report struct {
	SchemaVersion int                `json:"schemaVersion"`
	Tool          Tool               `json:"tool"`
	CreatedAt     time.Time          `json:"createdAt"`
	Artifact      Artifact           `json:"artifact"`
	DB            DBInfo             `json:"db"`
	Summary       Summary            `json:"summary"`
	Findings      []vuln.Finding     `json:"findings"`
	Packages      []analyzer.Package `json:"packages"`
	Warnings      []string           `json:"warnings,omitempty"`
}

// Tool names the program that made the report.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Artifact describes what was scanned.
type Artifact struct {
	Name   string       `json:"name"`
	Kind   image.Kind   `json:"kind"`
	Digest string       `json:"digest,omitempty"`
	OS     *analyzer.OS `json:"os,omitempty"`
}

// DBInfo says which vulnerability DB the findings come from.
type DBInfo struct {
	SchemaVersion int       `json:"schemaVersion"`
	UpdatedAt     time.Time `json:"updatedAt"`
	NextUpdate    time.Time `json:"nextUpdate"`
	DownloadedAt  time.Time `json:"downloadedAt"`
}

// Summary counts findings by severity.
type Summary struct {
	Total    int `json:"total"`
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Unknown  int `json:"unknown"`
	Packages int `json:"packages"`
}

// Options tune a scan.
type Options struct {
	// Image says how to open the image.
	Image image.Options
	// Analyzers to run; nil means all.
	Analyzers []analyzer.Analyzer
	// Parallel is how many layers are read at once; 0 means GOMAXPROCS.
	Parallel int
	// ToolVersion goes into the report.
	ToolVersion string
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// Now is the report's creation time; nil means time.Now.
	Now func() time.Time
	// IncludeDev keeps the packages lock files name for development only
	// (analyzer.Options.IncludeDev).
	IncludeDev bool
}

// Image scans the image named by ref against db.
func Image(ctx context.Context, ref string, db *vulndb.DB, opts Options) (*Report, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	iopts := opts.Image
	if iopts.Logger == nil {
		iopts.Logger = logger
	}
	img, err := image.Open(ctx, ref, iopts)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return Opened(ctx, img, db, opts)
}

// Opened scans an image that is already open (so that other checks can walk
// the same image without opening it again).
func Opened(ctx context.Context, img *image.Image, db *vulndb.DB, opts Options) (*Report, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ref := img.Name
	inv, err := analyzer.Run(ctx, img, analyzer.Options{Analyzers: opts.Analyzers, Parallel: opts.Parallel, Logger: logger, IncludeDev: opts.IncludeDev})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", ref, err)
	}
	return Inventory(ctx, Artifact{Name: ref, Kind: img.Kind, Digest: digest}, inv, db, opts)
}

// KindSBOM is the artifact kind of a scan of an SBOM's packages.
const KindSBOM image.Kind = "sbom"

// Inventory matches packages found elsewhere (an SBOM, an inventory made
// before) against db; art names what they came from (its OS is taken
// from inv).
func Inventory(ctx context.Context, art Artifact, inv *analyzer.Inventory, db *vulndb.DB, opts Options) (*Report, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	res, err := vuln.Detect(ctx, db, inv, logger)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", art.Name, err)
	}
	art.OS = inv.OS
	meta := db.Metadata()
	r := &Report{
		SchemaVersion: SchemaVersion,
		Tool:          Tool{Name: "taskguard", Version: opts.ToolVersion},
		CreatedAt:     now().UTC(),
		Artifact:      art,
		DB:            DBInfo{SchemaVersion: meta.Version, UpdatedAt: meta.UpdatedAt, NextUpdate: meta.NextUpdate, DownloadedAt: meta.DownloadedAt},
		Findings:      res.Findings,
		Packages:      inv.Packages,
		Warnings:      append(append([]string(nil), inv.Warnings...), res.Warnings...),
	}
	if r.Findings == nil {
		r.Findings = []vuln.Finding{}
	}
	if r.Packages == nil {
		r.Packages = []analyzer.Package{}
	}
	r.Summary = Summarize(r.Findings)
	r.Summary.Packages = len(r.Packages)
	return r, nil
}

// Summarize counts findings by severity.
func Summarize(fs []vuln.Finding) Summary {
	s := Summary{Total: len(fs)}
	for _, f := range fs {
		switch severity.Of(f.Severity) {
		case severity.Critical:
			s.Critical++
		case severity.High:
			s.High++
		case severity.Medium:
			s.Medium++
		case severity.Low:
			s.Low++
		default:
			s.Unknown++
		}
	}
	return s
}

// ParseSeverity checks a severity name (case-insensitive) and returns it in
// upper case.
func ParseSeverity(s string) (string, error) {
	v, err := severity.Parse(s)
	if err != nil {
		return "", fmt.Errorf("unknown severity %q (want UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL)", s)
	}
	return v.String(), nil
}

// AtOrAbove returns the findings whose severity is at least min.
func (r *Report) AtOrAbove(min string) []vuln.Finding {
	var out []vuln.Finding
	for _, f := range r.Findings {
		if severity.AtLeast(f.Severity, min) {
			out = append(out, f)
		}
	}
	return out
}
