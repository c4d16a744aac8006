package taskimages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/internal/severity"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/vuln"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// Filter selects images and vulnerabilities; zero fields do not filter.
type Filter struct {
	// Task is a glob over the task family ("shop-*").
	Task string
	// Image is a glob over the image reference.
	Image string
	// Severity is the lowest severity shown (LOW, MEDIUM, HIGH, CRITICAL).
	Severity string
	// CVE keeps only that vulnerability (and the images that have it).
	CVE string
	// Fixed keeps only vulnerabilities with a fixed version.
	Fixed bool
}

// Validate reports a malformed filter.
func (f Filter) Validate() error {
	if err := validFamilyGlob(f.Task); err != nil {
		return err
	}
	for _, g := range []string{f.Task, f.Image} {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", g, err)
		}
	}
	if f.Severity != "" {
		if !severity.Valid(f.Severity) {
			return fmt.Errorf("severity %q: want LOW, MEDIUM, HIGH or CRITICAL", f.Severity)
		}
	}
	return nil
}

func (f Filter) vulnFilter() bool { return f.Severity != "" || f.CVE != "" || f.Fixed }

func (f Filter) keepsImage(family, image string) bool {
	if f.Task != "" {
		if ok, _ := path.Match(f.Task, family); !ok {
			return false
		}
	}
	if f.Image != "" {
		if ok, _ := path.Match(f.Image, image); !ok {
			return false
		}
	}
	return true
}

func (f Filter) keepsVuln(v api.TaskVulnerability) bool {
	if f.CVE != "" && !strings.EqualFold(v.VulnerabilityID, f.CVE) {
		return false
	}
	if f.Fixed && v.FixedVersion == "" {
		return false
	}
	if f.Severity != "" && !severity.AtLeast(v.Severity, f.Severity) {
		return false
	}
	return true
}

// Matcher matches inventories against the DB in Dir. The DB is opened for
// each Match (trivy-db has one handle per process), so an updated DB is
// used from the next call on.
type Matcher struct {
	// Dir holds the vulnerability DB (`taskguard db update` or Updater).
	Dir    string
	Logger *slog.Logger
	// mu serializes matching with Updater's swaps of the DB files.
	mu sync.RWMutex
}

// Match returns the images of invs that f keeps, each with its filtered
// vulnerabilities; detail keeps the vulnerability and compliance lists and
// keeps images the vulnerability filters leave empty.
// Without a DB the images come back unmatched with a warning.
func (m *Matcher) Match(ctx context.Context, invs []store.StoredInventory, f Filter, detail bool) (api.TaskImageList, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mt := m.open(ctx)
	defer mt.close()
	out := api.TaskImageList{Images: []api.TaskImage{}, DBUpdatedAt: mt.updated}
	for _, si := range invs {
		if !f.keepsImage(si.Inventory.TaskFamily, si.Inventory.Image) {
			continue
		}
		ti, keep, err := mt.match(ctx, si, f, detail)
		if err != nil {
			return out, err
		}
		if keep {
			out.Images = append(out.Images, ti)
		}
	}
	return out, nil
}

// InventorySource is where List reads stored inventories: the heads of all
// of them, then the bodies one by one (store.Store is one).
type InventorySource interface {
	InventoryHeads(ctx context.Context, q store.InventoryQuery) ([]store.InventoryHead, error)
	Inventory(ctx context.Context, id int64) (store.StoredInventory, error)
}

// MaxConcurrentMatches bounds how many stored inventories this process holds
// decoded at once for listing and alerting, across all requests: each may be
// as large as an upload (16 MiB of JSON), so memory stays bounded however
// many inventories are stored and however many lists are asked for at once.
const MaxConcurrentMatches = 2

var matchSlots = make(chan struct{}, MaxConcurrentMatches)

// List is Match over every stored inventory of src that f keeps, without
// holding them all: it reads the heads (task, container, image), filters on
// them, then reads and matches one body at a time, keeping only the summary
// of each (no detail). An inventory replaced or dropped meanwhile is left out.
func (m *Matcher) List(ctx context.Context, src InventorySource, f Filter) (api.TaskImageList, error) {
	heads, err := src.InventoryHeads(ctx, store.InventoryQuery{})
	if err != nil {
		return api.TaskImageList{}, fmt.Errorf("list inventories: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	mt := m.open(ctx)
	defer mt.close()
	out := api.TaskImageList{Images: []api.TaskImage{}, DBUpdatedAt: mt.updated}
	for _, h := range heads {
		if !f.keepsImage(h.TaskFamily, h.Image) {
			continue
		}
		ti, keep, err := eachStored(ctx, src, h.ID, func(si store.StoredInventory) (api.TaskImage, bool, error) {
			return mt.match(ctx, si, f, false)
		})
		if err != nil {
			return out, err
		}
		if keep {
			out.Images = append(out.Images, ti)
		}
	}
	return out, nil
}

// One is inventory id of src in detail (vulnerabilities and compliance
// findings, filtered by f's vulnerability filters), read and matched within
// a match slot; found is false when there is no such inventory.
func (m *Matcher) One(ctx context.Context, src InventorySource, id int64, f Filter) (ti api.TaskImage, found bool, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mt := m.open(ctx)
	defer mt.close()
	f.Task, f.Image = "", "" // the ID chose the image
	return eachStored(ctx, src, id, func(si store.StoredInventory) (api.TaskImage, bool, error) {
		return mt.match(ctx, si, f, true)
	})
}

// eachStored reads inventory id within a match slot and runs fn on it; an
// inventory that is gone is skipped (keep false).
func eachStored[T any](ctx context.Context, src InventorySource, id int64, fn func(store.StoredInventory) (T, bool, error)) (T, bool, error) {
	var zero T
	select {
	case matchSlots <- struct{}{}:
		defer func() { <-matchSlots }()
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
	si, err := src.Inventory(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("read inventory %d: %w", id, err)
	}
	return fn(si)
}

// matching is one opened DB (or why there is none) for a run of matches.
type matching struct {
	db      *vulndb.DB
	dbErr   error
	updated time.Time
	logger  *slog.Logger
}

// open opens the DB, waiting for it (another scan or match of this
// process may hold it) as long as ctx lasts; the caller holds m.mu.
func (m *Matcher) open(ctx context.Context) *matching {
	mt := &matching{logger: m.Logger}
	if mt.logger == nil {
		mt.logger = slog.New(slog.DiscardHandler)
	}
	if m.Dir == "" {
		mt.dbErr = errors.New("the console has no vulnerability DB (--vuln-db-dir)")
	} else if mt.db, mt.dbErr = vulndb.OpenContext(ctx, m.Dir); mt.dbErr == nil {
		mt.updated = mt.db.Metadata().UpdatedAt
	}
	return mt
}

func (mt *matching) close() {
	if mt.db != nil {
		mt.db.Close()
	}
}

// match matches one inventory; keep is false when the vulnerability
// filters leave a summary (not detail) empty.
func (mt *matching) match(ctx context.Context, si store.StoredInventory, f Filter, detail bool) (api.TaskImage, bool, error) {
	inv := si.Inventory
	ti := api.TaskImage{
		ID: si.ID, TaskFamily: inv.TaskFamily, TaskID: inv.TaskID, Container: inv.Container,
		Image: inv.Image, ImageDigest: inv.ImageDigest, ReceivedAt: si.ReceivedAt, ScannedAt: inv.Time,
		OS: inv.OS, Packages: len(inv.Packages), Severities: map[string]int{}, Compliance: len(inv.Compliance),
	}
	if mt.db == nil {
		ti.Warnings = append(ti.Warnings, "vulnerabilities not matched: "+mt.dbErr.Error())
	} else {
		res, err := vuln.Detect(ctx, mt.db, toAnalyzer(inv), mt.logger)
		if err != nil {
			return ti, false, fmt.Errorf("match inventory %d: %w", si.ID, err)
		}
		ti.Warnings = append(ti.Warnings, res.Warnings...)
		for _, v := range res.Findings {
			tv := api.TaskVulnerability{
				VulnerabilityID: v.VulnerabilityID, PkgType: v.PkgType, PkgName: v.PkgName,
				InstalledVersion: v.InstalledVersion, FixedVersion: v.FixedVersion, Status: v.Status,
				Severity: v.Severity, Title: v.Title, PrimaryURL: v.PrimaryURL,
			}
			if !f.keepsVuln(tv) {
				continue
			}
			ti.Severities[tv.Severity]++
			if detail {
				ti.Vulnerabilities = append(ti.Vulnerabilities, tv)
			}
		}
	}
	if f.vulnFilter() && len(ti.Severities) == 0 && !detail {
		return ti, false, nil
	}
	if detail {
		ti.ComplianceFindings = inv.Compliance
	}
	return ti, true, nil
}

// toAnalyzer turns the wire inventory back into the scanners' type.
func toAnalyzer(inv api.Inventory) *analyzer.Inventory {
	out := &analyzer.Inventory{Packages: make([]analyzer.Package, 0, len(inv.Packages))}
	if inv.OS != nil {
		out.OS = &analyzer.OS{Family: inv.OS.Family, Name: inv.OS.Name}
	}
	for _, p := range inv.Packages {
		out.Packages = append(out.Packages, analyzer.Package{
			Type: p.Type, Name: p.Name, Version: p.Version, SrcName: p.SrcName, SrcVersion: p.SrcVersion,
			Location: analyzer.Location{Layer: p.Location.Layer, Path: p.Location.Path},
		})
	}
	return out
}

// Updater keeps the Matcher's DB current: every Interval it downloads a
// new DB when the current one is due (vulndb.Update, into a staging folder
// beside it, so matching goes on meanwhile) and swaps the files in between
// two matches. Options.Offline never downloads.
type Updater struct {
	Matcher  *Matcher
	Interval time.Duration
	Options  vulndb.UpdateOptions
	Logger   *slog.Logger
	// Updated, when set, runs after each installed download, once the new
	// DB is in use (the console re-evaluates its image alerts there).
	Updated func(ctx context.Context)
}

// Run updates at once and then every Interval until ctx ends. Failures are
// logged; the last good DB stays in use.
func (u *Updater) Run(ctx context.Context) {
	logger := u.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "vulndb")
	for {
		res, err := u.Update(ctx)
		switch {
		case err != nil:
			logger.Warn("vulnerability DB update failed; keeping the current one", "err", err)
		case res.Downloaded:
			logger.Info("vulnerability DB updated; task images are matched against it from now on", "updated_at", res.Metadata.UpdatedAt)
		}
		t := time.NewTimer(u.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Update runs one update: nothing when the DB is fresh (or Offline),
// else a download into a staging folder and a swap of the DB files.
func (u *Updater) Update(ctx context.Context) (vulndb.UpdateResult, error) {
	dir := u.Matcher.Dir
	now := time.Now
	if u.Options.Now != nil {
		now = u.Options.Now
	}
	meta, err := vulndb.ReadMetadata(dir)
	_, serr := os.Stat(vulndb.Path(dir))
	fresh := err == nil && serr == nil && meta.Version == vulndb.SchemaVersion && now().Before(meta.NextUpdate)
	if u.Options.Offline || (fresh && !u.Options.Force) {
		return vulndb.Update(ctx, dir, u.Options) // checks only; never downloads
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return vulndb.UpdateResult{}, fmt.Errorf("vulnerability DB: %w", err)
	}
	staging, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), ".vulndb-next-")
	if err != nil {
		return vulndb.UpdateResult{}, fmt.Errorf("vulnerability DB staging folder: %w", err)
	}
	defer os.RemoveAll(staging)
	opts := u.Options
	opts.Force = true
	res, err := vulndb.Update(ctx, staging, opts)
	if err != nil {
		return res, err
	}
	if err := u.install(staging, dir); err != nil {
		return res, err
	}
	if u.Updated != nil {
		u.Updated(ctx)
	}
	return res, nil
}

// install swaps the DB files of staging into dir between two matches.
func (u *Updater) install(staging, dir string) error {
	u.Matcher.mu.Lock()
	defer u.Matcher.mu.Unlock()
	for _, name := range []string{filepath.Base(vulndb.Path(staging)), "metadata.json"} {
		if err := os.Rename(filepath.Join(staging, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("install the new vulnerability DB in %s: %w", dir, err)
		}
	}
	return nil
}

// validFamilyGlob accepts a glob over task families: what a family may hold
// (ASCII letters, digits, '-', '_', as ECS allows) and the glob characters
// * ? [ ] ^, at most auth.MaxTaskFamilyLen bytes.
func validFamilyGlob(g string) error {
	if len(g) > auth.MaxTaskFamilyLen {
		return fmt.Errorf("task: %d characters, a task family is at most %d", len(g), auth.MaxTaskFamilyLen)
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_*?[]^", c) >= 0 {
			continue
		}
		return fmt.Errorf("task: character %s at byte %d; a task family glob is letters, digits, '-', '_' and * ? [ ] ^", strconv.QuoteRune(rune(c)), i)
	}
	return nil
}
