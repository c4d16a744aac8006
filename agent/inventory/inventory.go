package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/compliance"
	"github.com/taskguard/taskguard/scanners/image"
)

// DefaultSkipDirs are never entered: kernel filesystems of a running container.
var DefaultSkipDirs = []string{"proc", "sys", "dev"}

// DefaultMaxFileSize bounds the content of one file the scan reads (the
// memory cap: a scan holds at most one file's content at a time).
const DefaultMaxFileSize = 64 << 20

// DefaultCPUBudget is the share of one CPU a scan may use.
const DefaultCPUBudget = 0.1

// containerChecks are the image checks that apply to a running container;
// the others need the image config or reference (healthcheck, ADD of a
// URL, tag), which a container cannot see.
var containerChecks = map[string]bool{
	"TG-IMG-001": true, // runs as root
	"TG-IMG-003": true, // secret in the environment
	"TG-IMG-004": true, // private key or credentials file
	"TG-IMG-005": true, // setuid/setgid
	"TG-IMG-006": true, // package-manager caches
	"TG-IMG-009": true, // sshd
	"TG-IMG-010": true, // world-writable system files
}

// Options configure one scan.
type Options struct {
	// Root is the filesystem to scan; empty means "/".
	Root string
	// SkipDirs are directories relative to Root not to enter; nil means
	// DefaultSkipDirs. The launcher adds the defender's volume.
	SkipDirs []string
	// Env is the app's environment, checked for secrets (names only are reported).
	Env []string
	// UID is the user the app runs as (the root check).
	UID int
	// MaxFileSize bounds one file's content; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// CPUBudget is the share of one CPU the walk may use (0 < b <= 1);
	// 0 means DefaultCPUBudget, 1 means no throttling.
	CPUBudget float64
	// Logger receives warnings about skipped files; nil discards them.
	Logger *slog.Logger
	// Custom are the image rule's custom checks, run in the same walk (ENV
	// conditions against Env); their failures are reported like the
	// other checks, without file contents or ENV values.
	Custom []compliance.CustomCheck
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.SkipDirs == nil {
		o.SkipDirs = DefaultSkipDirs
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.CPUBudget <= 0 || o.CPUBudget > 1 {
		o.CPUBudget = DefaultCPUBudget
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Scan inventories the filesystem at o.Root in one throttled walk. The
// identity fields of the result (task, container, image) are left to the
// caller. A file that cannot be read or parsed is skipped with a warning;
// an unreadable root is an error.
func Scan(ctx context.Context, o Options) (*api.Inventory, error) {
	o = o.withDefaults()
	started := time.Now()
	hash, err := PackageDBHash(o.Root)
	if err != nil {
		return nil, err
	}
	img, err := image.Open(ctx, o.Root, image.Options{
		Kind: image.KindRootFS, MaxFileSize: o.MaxFileSize, SkipDirs: o.SkipDirs, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer img.Close()
	w := &walker{img: img, obs: compliance.NewObserverWith(o.Custom), th: newThrottle(o.CPUBudget)}
	found, err := analyzer.Run(ctx, w, analyzer.Options{Parallel: 1, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("inventory of %s: %w", o.Root, err)
	}
	findings := w.obs.Findings(compliance.ImageInput{Config: runningConfig(o.UID, o.Env)})
	inv := &api.Inventory{
		Time:       time.Now().UTC(),
		Hash:       hash,
		Packages:   make([]api.InventoryPackage, 0, len(found.Packages)),
		Files:      w.files,
		DurationMS: time.Since(started).Milliseconds(),
	}
	if found.OS != nil {
		inv.OS = &api.InventoryOS{Family: found.OS.Family, Name: found.OS.Name}
	}
	for _, p := range found.Packages {
		inv.Packages = append(inv.Packages, api.InventoryPackage{
			Type: p.Type, Name: p.Name, Version: p.Version, SrcName: p.SrcName, SrcVersion: p.SrcVersion,
			Location: api.PackageLocation{Layer: p.Location.Layer, Path: p.Location.Path},
		})
	}
	if len(inv.Packages) > api.MaxInventoryPackages {
		o.Logger.Warn("inventory truncated", "packages", len(inv.Packages), "kept", api.MaxInventoryPackages)
		inv.Packages = inv.Packages[:api.MaxInventoryPackages]
	}
	custom := map[string]bool{}
	for _, c := range o.Custom {
		custom[c.ID] = true
	}
	for _, f := range findings {
		if !containerChecks[f.CheckID] && !custom[f.CheckID] {
			continue
		}
		inv.Compliance = append(inv.Compliance, api.ComplianceFinding{
			CheckID: f.CheckID, Family: f.Family, Title: f.Title, Severity: f.Severity,
			Target: containerTarget(f.Target), Message: containerMessage(f), Remediation: f.Remediation,
		})
	}
	return inv, nil
}

// runningConfig describes the running container the way an image config
// would, so the image checks on user and environment apply to it.
func runningConfig(uid int, env []string) *v1.ConfigFile {
	cf := &v1.ConfigFile{}
	cf.Config.User = strconv.Itoa(uid)
	cf.Config.Env = env
	return cf
}

func containerTarget(t string) string {
	if t == "image" {
		return "container"
	}
	return t
}

// containerMessage words the config-based findings for a running container.
func containerMessage(f compliance.Finding) string {
	switch f.CheckID {
	case "TG-IMG-001":
		return "the app runs as root (uid 0)"
	case "TG-IMG-003":
		return "environment variable " + strings.TrimPrefix(f.Message, "ENV ")
	}
	return f.Message
}

// walker feeds each file of the root filesystem to the compliance observer
// and the analyzers, one at a time, under the CPU budget.
type walker struct {
	img   *image.Image
	obs   *compliance.Observer
	th    *throttle
	files int
}

func (w *walker) WalkLayers(ctx context.Context, _ int, visit image.VisitFunc) ([]image.Kept, error) {
	return w.img.WalkLayers(ctx, 1, func(f image.File) (any, error) {
		if err := w.th.tick(ctx); err != nil {
			return nil, err
		}
		w.files++
		if err := w.obs.Observe(f); err != nil {
			return nil, err
		}
		return visit(f)
	})
}

// SkipDirsFor returns DefaultSkipDirs plus the given directories (absolute
// paths, such as the defender's volume) made relative to root; directories
// outside root or root itself are left out.
func SkipDirsFor(root string, dirs ...string) []string {
	out := append([]string(nil), DefaultSkipDirs...)
	for _, d := range dirs {
		r, err := filepath.Rel(root, d)
		if err != nil || r == "." || r == ".." || strings.HasPrefix(r, "../") {
			continue
		}
		out = append(out, filepath.ToSlash(r))
	}
	return out
}
