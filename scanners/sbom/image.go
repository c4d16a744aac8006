package sbom

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
)

// FormatForPath picks the SBOM format of a file by its name: SPDX JSON for
// *.spdx.json and *.spdx, CycloneDX JSON otherwise.
func FormatForPath(path string) string {
	lower := strings.ToLower(path)
	if strings.HasSuffix(lower, ".spdx.json") || strings.HasSuffix(lower, ".spdx") {
		return FormatSPDXJSON
	}
	return FormatCycloneDX
}

// ImageOptions say how FromImage inventories an image.
type ImageOptions struct {
	// Image opens the image (its kind, cache, logger, ...).
	Image image.Options
	// Analyze runs the analyzers; its zero value runs the default set.
	Analyze analyzer.Options
	// ToolVersion is taskguard's version, named in the document.
	ToolVersion string
}

// FromImage inventories the image ref (no vulnerability DB needed) into the
// subject of an SBOM. With a layer cache in opts.Image, layers an earlier
// scan analysed are not read again.
func FromImage(ctx context.Context, ref string, opts ImageOptions) (*Subject, error) {
	if opts.Image.Logger == nil {
		opts.Image.Logger = opts.Analyze.Logger
	}
	img, err := image.Open(ctx, ref, opts.Image)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	inv, err := analyzer.Run(ctx, img, opts.Analyze)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return &Subject{Name: ref, Kind: string(img.Kind), Digest: digest, OS: inv.OS, Packages: inv.Packages,
		ToolVersion: opts.ToolVersion, Created: time.Now()}, nil
}

// Write writes subj as format (FormatCycloneDX or FormatSPDXJSON) to w.
func Write(w io.Writer, subj *Subject, format string) error {
	switch format {
	case FormatCycloneDX:
		return WriteCycloneDX(w, subj)
	case FormatSPDXJSON:
		return WriteSPDX(w, subj)
	}
	return fmt.Errorf("SBOM format %q: want %s or %s", format, FormatCycloneDX, FormatSPDXJSON)
}

// WriteFile writes subj to path in the format its name asks for
// (FormatForPath), whole through a rename: a reader never sees half a
// document, and a failed write leaves no file.
func WriteFile(path string, subj *Subject) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("SBOM %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("SBOM %s: %w", path, err)
	}
	err = Write(tmp, subj, FormatForPath(path))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("SBOM %s: %w", path, err)
	}
	return nil
}
