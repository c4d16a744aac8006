package analyzer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"

	"github.com/taskguard/taskguard/scanners/image"
)

// Package types: the package manager or ecosystem a package belongs to.
const (
	TypeDpkg     = "dpkg"
	TypeAPK      = "apk"
	TypeRPM      = "rpm"
	TypeGoBinary = "gobinary"
	TypeNpm      = "npm"
	TypePython   = "python"
	TypeJar      = "jar"
)

// OS is the operating system an image is built on.
type OS struct {
	// Family is the distribution ID ("debian", "ubuntu", "alpine", ...).
	Family string `json:"family"`
	// Name is its version ("12.5", "3.19.1", "22.04").
	Name string `json:"name"`
}

// Location is where a package was found.
type Location struct {
	// Layer is the diff ID of the layer holding the file, empty for a rootfs.
	Layer string `json:"layer,omitempty"`
	// Path is the file that declared the package.
	Path string `json:"path"`
}

// Package is one installed package.
type Package struct {
	// Type is the package manager or ecosystem (TypeDpkg, TypeNpm, ...).
	Type string `json:"type"`
	// Name is the package name as its ecosystem spells it.
	Name string `json:"name"`
	// Version is the installed version (with epoch for OS packages: "1:2.3-4").
	Version string `json:"version"`
	// SrcName and SrcVersion are the source package, for OS packages.
	SrcName    string `json:"srcName,omitempty"`
	SrcVersion string `json:"srcVersion,omitempty"`
	// Location is where the package was found.
	Location Location `json:"location"`
}

// Input is one file handed to an analyzer.
type Input struct {
	Path    string
	Layer   string
	Info    fs.FileInfo
	Content []byte
}

// Result is what an analyzer found in one file.
type Result struct {
	OS       *OS
	Packages []Package
}

// Analyzer finds packages (or the OS) in the files it asks for.
type Analyzer interface {
	// Type names the analyzer ("dpkg", "os-release", ...).
	Type() string
	// Version changes when the analyzer's output for the same input changes.
	Version() int
	// Required reports whether the analyzer wants the file at path
	// (slash-separated, relative to the root).
	Required(path string, info fs.FileInfo) bool
	// Analyze parses one file. An error means the file could not be parsed.
	Analyze(ctx context.Context, in Input) (*Result, error)
}

// Inventory is everything found in an image.
type Inventory struct {
	OS       *OS
	Packages []Package
}

// Walker is the part of an image that Run needs.
type Walker interface {
	Walk(ctx context.Context, fn image.WalkFunc) error
}

// ErrNotApplicable is returned by an analyzer for a file that turns out not
// to be its kind (an executable that is not a Go binary); Run skips the file
// without a warning.
var ErrNotApplicable = errors.New("not applicable")

// Run walks img once and runs the given analyzers (All() when nil) on the
// files each requires.
func Run(ctx context.Context, img Walker, analyzers []Analyzer, logger *slog.Logger) (*Inventory, error) {
	if analyzers == nil {
		analyzers = All()
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "analyzer")
	inv := &Inventory{}
	var osFrom, debPoint string
	var wanted []Analyzer
	err := img.Walk(ctx, func(f image.File) error {
		wanted = wanted[:0]
		for _, a := range analyzers {
			if a.Required(f.Path, f.Info) {
				wanted = append(wanted, a)
			}
		}
		if len(wanted) == 0 {
			return nil
		}
		content, err := f.ReadAll()
		if err != nil {
			return err
		}
		in := Input{Path: f.Path, Layer: f.Layer, Info: f.Info, Content: content}
		for _, a := range wanted {
			res, err := a.Analyze(ctx, in)
			if errors.Is(err, ErrNotApplicable) {
				continue
			}
			if err != nil {
				logger.Warn("skipping file an analyzer could not parse", "analyzer", a.Type(), "path", f.Path, "err", err)
				continue
			}
			if res == nil {
				continue
			}
			if res.OS != nil && res.OS.Family == debianPointRelease {
				debPoint = res.OS.Name
				continue
			}
			if res.OS != nil && (inv.OS == nil || osPriority(f.Path) > osPriority(osFrom)) {
				inv.OS, osFrom = res.OS, f.Path
			}
			inv.Packages = append(inv.Packages, res.Packages...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	if inv.OS != nil && inv.OS.Family == "debian" && debPoint != "" {
		inv.OS.Name = debPoint
	}
	SortPackages(inv.Packages)
	return inv, nil
}

// SortPackages sorts packages by type, name, version and location.
func SortPackages(pkgs []Package) {
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Location.Path < b.Location.Path
	})
}
