package analyzer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"slices"
	"sort"

	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
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
	// Repository is the release of the package repositories the system
	// installs from, when the image says (Alpine's /etc/apk/repositories:
	// "3.20", "edge"); its advisories are the ones that describe the
	// installed packages.
	Repository string `json:"repository,omitempty"`
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
	// Arch is the architecture an rpm package was built for ("x86_64",
	// "noarch"); Rocky Linux and Red Hat advisories are per architecture.
	Arch string `json:"arch,omitempty"`
	// Modularity is an rpm package's modularity label
	// ("nodejs:18:9020020230608123038:rhel9"); advisories of modular
	// packages are keyed "name:stream::package".
	Modularity string `json:"modularity,omitempty"`
	// ThirdParty marks an rpm package from outside the distribution (its
	// Vendor is no distribution's: EPEL, Docker, NodeSource): the
	// distribution's advisories do not describe it, so it is not matched
	// against them (as Trivy).
	ThirdParty bool `json:"thirdParty,omitempty"`
	// Dev marks a package a lock file (or the manifest beside it) names
	// for development only; Run leaves these out unless
	// Options.IncludeDev.
	Dev bool `json:"dev,omitempty"`
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
	// OwnedFiles are files an OS package installed (relative paths);
	// language packages found in them are dropped, unless Owner is in
	// the ThirdParty list of another result.
	OwnedFiles []string
	// Owner names the OS package that installed OwnedFiles, when known.
	Owner string
	// ThirdParty names OS packages from outside the distribution, whose
	// files do not hide the language packages in them.
	ThirdParty []string
	// Warnings say what the analyzer left out of a file it could parse
	// (a Maven dependency whose version is an unresolved property).
	Warnings []string
	// Graph is a lock file's dependency graph, when which of its packages
	// are for development only is known from the manifest beside it.
	Graph *DepGraph
	// Manifest is what a project manifest (package.json, pyproject.toml)
	// declares.
	Manifest *Manifest
	// Requirements are a requirements file's includes and constraints.
	Requirements *Requirements
	// Pom is what a pom.xml's children and its parents' join need.
	Pom *PomModel
	// ContentSets are the Red Hat repositories a content manifest names
	// (generic "__N" suffixes removed).
	ContentSets []string
	// RedHatNVR is the NVR and architecture of a Red Hat build, from its
	// build Dockerfile ("ubi8-container-8.3-227-x86_64"), as trivy-db
	// keys the CPEs of the products the image belongs to.
	RedHatNVR string
	// UbuntuESM says Ubuntu Pro's esm-infra service is enabled.
	UbuntuESM bool
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
	// RedHatContentSets are the repositories the Red Hat content manifests
	// kept in the image name (every layer's, without repeats); empty when
	// the image has none.
	RedHatContentSets []string
	// RedHatNVRs are the builds the Red Hat build Dockerfiles kept in the
	// image name ("ubi8-container-8.3-227-x86_64"; the base image's and
	// each Red Hat image built on it, without repeats).
	RedHatNVRs []string
	// UbuntuESM says the image is an Ubuntu with Ubuntu Pro's esm-infra
	// service enabled (var/lib/ubuntu-advantage/status.json): past the
	// release's end of life its packages get ESM fixes.
	UbuntuESM bool
	// Warnings are the analyzers' warnings, each naming its file.
	Warnings []string
}

// Walker is the part of an image that Run needs.
type Walker interface {
	WalkLayers(ctx context.Context, parallel int, visit image.VisitFunc) ([]image.Kept, error)
}

// cachedWalker is an image that can keep what was learnt from its layers
// (*image.Image opened with a layer cache).
type cachedWalker interface {
	WalkLayersCached(ctx context.Context, parallel int, visit image.VisitFunc, cache image.LayerCache) ([]image.Kept, error)
	LayerCache() *layercache.Cache
	MaxFileSize() int64
}

// ErrNotApplicable is returned by an analyzer for a file that turns out not
// to be its kind (an executable that is not a Go binary); Run skips the file
// without a warning.
var ErrNotApplicable = errors.New("not applicable")

// Options tune Run.
type Options struct {
	// Analyzers to run; nil means All().
	Analyzers []Analyzer
	// Parallel is how many layers are read at once; 0 means GOMAXPROCS.
	Parallel int
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// IncludeDev keeps the packages lock files name for development only
	// (marked Package.Dev); by default they are left out, as Trivy.
	IncludeDev bool
}

// fileResult is what the analyzers found in one file.
type fileResult struct {
	results []*Result
}

// Run reads img's layers (several at once) and runs the analyzers on the
// files each requires; what they find in files that upper layers removed
// or replaced is dropped.
func Run(ctx context.Context, img Walker, opts Options) (*Inventory, error) {
	analyzers := opts.Analyzers
	if analyzers == nil {
		analyzers = All()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "analyzer")
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	visit := func(f image.File) (any, error) {
		return analyzeFile(ctx, f, analyzers, logger)
	}
	var kept []image.Kept
	var err error
	if ci, ok := img.(cachedWalker); ok && ci.LayerCache() != nil {
		lc := layerCache{c: ci.LayerCache(), sig: CacheSignature(analyzers, ci.MaxFileSize())}
		kept, err = ci.WalkLayersCached(ctx, parallel, visit, lc)
	} else {
		kept, err = img.WalkLayers(ctx, parallel, visit)
	}
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	inv := &Inventory{}
	var osFrom, debPoint, apkRepository string
	var esm bool
	type ownership struct {
		owner string
		files []string
	}
	var owners []ownership
	thirdParty := map[string]bool{}
	manifests := map[string]*Manifest{}
	requirements := map[string]*Result{}
	poms := map[string]*PomModel{}
	type pomAt struct{ path, layer string }
	var unresolvedPoms []pomAt
	for _, k := range kept {
		if fr, ok := k.Value.(*fileResult); ok && fr != nil {
			for _, res := range fr.results {
				if res.Manifest != nil {
					manifests[k.Path] = res.Manifest
				}
				if res.Requirements != nil {
					requirements[k.Path] = res
				}
				if res.Pom != nil {
					poms[k.Path] = res.Pom
					if len(res.Pom.Unresolved) > 0 {
						unresolvedPoms = append(unresolvedPoms, pomAt{k.Path, k.Layer})
					}
				}
			}
		}
	}
	for _, k := range kept {
		fr, ok := k.Value.(*fileResult)
		if !ok || fr == nil {
			continue
		}
		for _, res := range fr.results {
			if res.OS != nil && res.OS.Family == debianPointRelease {
				debPoint = res.OS.Name
				continue
			}
			if res.OS != nil && res.OS.Family == apkRepositoryFamily {
				apkRepository = res.OS.Name
				continue
			}
			if res.OS != nil && (inv.OS == nil || osPriority(k.Path) > osPriority(osFrom)) {
				inv.OS, osFrom = res.OS, k.Path
			}
			if res.Requirements != nil && res.Requirements.IncludedOnly {
				continue // reported when a requirements.txt includes it
			}
			pkgs, warns := markDevPackages(k.Path, res, manifests)
			for _, p := range pkgs {
				if !p.Dev || opts.IncludeDev {
					inv.Packages = append(inv.Packages, p)
				}
			}
			for _, w := range append(res.Warnings[:len(res.Warnings):len(res.Warnings)], warns...) {
				logger.Warn(w, "layer", k.Layer)
				inv.Warnings = append(inv.Warnings, w)
			}
			if len(res.OwnedFiles) > 0 {
				owners = append(owners, ownership{res.Owner, res.OwnedFiles})
			}
			for _, n := range res.ThirdParty {
				thirdParty[n] = true
			}
			esm = esm || res.UbuntuESM
			for _, cs := range res.ContentSets {
				if !slices.Contains(inv.RedHatContentSets, cs) {
					inv.RedHatContentSets = append(inv.RedHatContentSets, cs)
				}
			}
			if n := res.RedHatNVR; n != "" && !slices.Contains(inv.RedHatNVRs, n) {
				inv.RedHatNVRs = append(inv.RedHatNVRs, n)
			}
		}
	}
	for _, u := range unresolvedPoms {
		pkgs, warns := resolvePomParents(u.path, Location{Layer: u.layer, Path: u.path}, poms)
		inv.Packages = append(inv.Packages, pkgs...)
		for _, w := range warns {
			logger.Warn(w, "layer", u.layer)
			inv.Warnings = append(inv.Warnings, w)
		}
	}
	if len(requirements) > 0 {
		pkgs, warns := followRequirements(requirements)
		inv.Packages = append(inv.Packages, pkgs...)
		for _, w := range warns {
			logger.Warn(w)
			inv.Warnings = append(inv.Warnings, w)
		}
	}
	owned := map[string]bool{}
	for _, o := range owners {
		if o.owner != "" && thirdParty[o.owner] {
			continue
		}
		for _, f := range o.files {
			owned[f] = true
		}
	}
	if len(owned) > 0 {
		pkgs := inv.Packages[:0]
		for _, p := range inv.Packages {
			if languageTypes[p.Type] && owned[outerFile(p.Location.Path)] {
				continue
			}
			pkgs = append(pkgs, p)
		}
		inv.Packages = pkgs
	}
	if inv.OS != nil && inv.OS.Family == "debian" && debPoint != "" {
		inv.OS.Name = debPoint
	}
	inv.UbuntuESM = esm && inv.OS != nil && inv.OS.Family == "ubuntu"
	if inv.OS != nil && inv.OS.Family == "alpine" && apkRepository != "" {
		inv.OS.Repository = apkRepository
	}
	SortPackages(inv.Packages)
	return inv, nil
}

// analyzeFile runs the analyzers that require f. It may run in several
// goroutines at once.
func analyzeFile(ctx context.Context, f image.File, analyzers []Analyzer, logger *slog.Logger) (any, error) {
	var wanted []Analyzer
	for _, a := range analyzers {
		if a.Required(f.Path, f.Info) {
			wanted = append(wanted, a)
		}
	}
	if len(wanted) == 0 {
		return nil, nil
	}
	content, err := f.ReadAll()
	if err != nil {
		return nil, err
	}
	in := Input{Path: f.Path, Layer: f.Layer, Info: f.Info, Content: content}
	fr := &fileResult{}
	for _, a := range wanted {
		res, err := a.Analyze(ctx, in)
		if errors.Is(err, ErrNotApplicable) {
			continue
		}
		if err != nil {
			logger.Warn("skipping file an analyzer could not parse", "analyzer", a.Type(), "path", f.Path, "layer", f.Layer, "err", err)
			continue
		}
		if res != nil {
			fr.results = append(fr.results, res)
		}
	}
	if len(fr.results) == 0 {
		return nil, nil
	}
	return fr, nil
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
