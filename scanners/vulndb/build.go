package vulndb

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

// Buckets and data sources written by Build, named as trivy-db names them.
const (
	BucketDebian12 = "debian 12"
	BucketGo       = "go::The Go Vulnerability Database"
	BucketNpm      = "npm::GitHub Security Advisory npm"

	SourceDebian = types.SourceID("debian")
	SourceGo     = types.SourceID("go-vulndb")
	SourceGHSA   = types.SourceID("ghsa")
)

// UpdateIDPrefix starts the ID Build gives a Debian security update whose
// changelog names no CVE: "DEBIAN-UPDATE-<source>-<fixed version>".
const UpdateIDPrefix = "DEBIAN-UPDATE-"

// BuildStats counts what Build wrote.
type BuildStats struct {
	Advisories      int
	Vulnerabilities int
}

// Build writes a new database into dir from the advisories under src, which
// has the layout of the shared corpora: go-osv/*.json (Go OSV reports),
// ghsa-npm/*.json (GitHub npm advisories in OSV form) and
// debian-bookworm/*.json (Debian bookworm security-update facts). Folders
// that are missing are skipped; an unreadable file aborts the build. The
// previous database in dir is replaced.
func Build(ctx context.Context, dir, src string, now time.Time) (BuildStats, error) {
	var st BuildStats
	b := newBuilder()
	steps := []struct {
		folder string
		load   func(string) error
	}{
		{"go-osv", func(p string) error { return b.loadOSV(p, BucketGo, SourceGo, "Go") }},
		{"ghsa-npm", func(p string) error { return b.loadOSV(p, BucketNpm, SourceGHSA, "npm") }},
		{"debian-bookworm", b.loadDebian},
		{"alpine-secdb", b.loadAlpine},
		{"ubuntu", b.loadUbuntu},
		{"amazon/*", b.loadAmazon},
		{"rocky/*", b.loadRocky},
		{"alma/*", b.loadAlma},
		{"redhat-osv", b.loadRedHat},
		{"redhat-cpe", b.loadRedHatNVRs},
	}
	steps = append(steps, b.languageSteps()...) // lang.go: ghsa-pip/, ghsa-rubygems/, ghsa-cargo/, ghsa-composer/, ghsa-nuget/, ghsa-maven/
	found := false
	for _, s := range steps {
		files, err := filepath.Glob(filepath.Join(src, s.folder, "*.json"))
		if err != nil {
			return st, fmt.Errorf("build vulnerability DB: %w", err)
		}
		found = found || len(files) > 0
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if err := s.load(f); err != nil {
				return st, fmt.Errorf("build vulnerability DB: %s: %w", f, err)
			}
		}
	}
	if !found {
		return st, fmt.Errorf("build vulnerability DB: no advisories under %s (want go-osv/, ghsa-npm/ or debian-bookworm/ with .json files)", src)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, fmt.Errorf("build vulnerability DB: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return st, fmt.Errorf("build vulnerability DB: %w", err)
	}
	defer os.RemoveAll(tmp)
	st, err = b.write(tmp)
	if err != nil {
		return st, fmt.Errorf("build vulnerability DB: %w", err)
	}
	meta := Metadata{Version: SchemaVersion, UpdatedAt: now.UTC(), NextUpdate: now.UTC().Add(24 * time.Hour), DownloadedAt: now.UTC()}
	if err := WriteMetadata(tmp, meta); err != nil {
		return st, err
	}
	if err := install(tmp, dir); err != nil {
		return st, fmt.Errorf("build vulnerability DB: %w", err)
	}
	return st, nil
}

// install moves trivy.db and metadata.json from tmp into dir, the database
// first so that fresh metadata never describes a stale file.
func install(tmp, dir string) error {
	for _, name := range []string{"trivy.db", "metadata.json"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
	}
	return nil
}

type advKey struct{ bucket, pkg, id string }

type builder struct {
	advisories map[advKey]*types.Advisory
	vulns      map[string]types.Vulnerability
	sources    map[string]types.DataSource
	os         *osData // OS layouts beyond plain advisories (build_os.go)
}

func newBuilder() *builder {
	return &builder{
		advisories: map[advKey]*types.Advisory{},
		vulns:      map[string]types.Vulnerability{},
		sources: map[string]types.DataSource{
			BucketDebian12: {ID: SourceDebian, Name: "Debian Security Tracker", URL: "https://salsa.debian.org/security-tracker-team/security-tracker"},
			BucketGo:       {ID: SourceGo, Name: "The Go Vulnerability Database", URL: "https://pkg.go.dev/vuln/"},
			BucketNpm:      {ID: SourceGHSA, Name: "GitHub Security Advisory npm", URL: "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Anpm"},
		},
	}
}

// osvEntry is the part of an OSV record Build reads.
type osvEntry struct {
	ID        string    `json:"id"`
	Aliases   []string  `json:"aliases"`
	Summary   string    `json:"summary"`
	Details   string    `json:"details"`
	Withdrawn string    `json:"withdrawn"`
	Published time.Time `json:"published"`
	Modified  time.Time `json:"modified"`
	Severity  []struct {
		Type  string `json:"type"`
		Score string `json:"score"`
	} `json:"severity"`
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem"`
			Name      string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string `json:"type"`
			Events []struct {
				Introduced   string `json:"introduced"`
				Fixed        string `json:"fixed"`
				LastAffected string `json:"last_affected"`
			} `json:"events"`
		} `json:"ranges"`
		Versions         []string             `json:"versions"`
		DatabaseSpecific affectedGHSASpecific `json:"database_specific"`
	} `json:"affected"`
	References []struct {
		URL string `json:"url"`
	} `json:"references"`
	DatabaseSpecific struct {
		Severity string   `json:"severity"`
		CWEIDs   []string `json:"cwe_ids"`
	} `json:"database_specific"`
}

// loadOSV reads one OSV record and adds its advisories for ecosystem.
func (b *builder) loadOSV(path, bucket string, source types.SourceID, ecosystem string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var e osvEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("parse OSV: %w", err)
	}
	if e.ID == "" {
		return fmt.Errorf("OSV record has no id")
	}
	if e.Withdrawn != "" {
		return nil
	}
	ids := vulnIDs(e.ID, e.Aliases)
	for _, aff := range e.Affected {
		if !strings.EqualFold(aff.Package.Ecosystem, ecosystem) || aff.Package.Name == "" {
			continue
		}
		var vulnerable, patched []string
		for _, r := range aff.Ranges {
			if r.Type == "GIT" {
				continue
			}
			var from, to string
			var toIncluded, open bool
			flushRange := func() {
				if open {
					vulnerable = append(vulnerable, rangeString(from, to, toIncluded))
				}
				open, from, to, toIncluded = false, "", "", false
			}
			for _, ev := range r.Events {
				switch {
				case ev.Introduced != "":
					flushRange()
					open, from = true, ev.Introduced
				case ev.Fixed != "":
					to = ev.Fixed
					patched = append(patched, ev.Fixed)
					flushRange()
				case ev.LastAffected != "":
					to, toIncluded = ev.LastAffected, true
					flushRange()
				}
			}
			flushRange()
		}
		vulnerable = boundOpenRanges(vulnerable, aff.DatabaseSpecific.LastKnownAffectedVersionRange)
		for _, v := range aff.Versions {
			vulnerable = append(vulnerable, "="+v)
		}
		if len(vulnerable) == 0 {
			continue
		}
		for _, id := range ids {
			k := advKey{bucket, aff.Package.Name, id}
			adv := b.advisories[k]
			if adv == nil {
				adv = &types.Advisory{}
				if id != e.ID {
					adv.VendorIDs = []string{e.ID}
				}
				b.advisories[k] = adv
			}
			adv.VulnerableVersions = append(adv.VulnerableVersions, vulnerable...)
			adv.PatchedVersions = append(adv.PatchedVersions, patched...)
		}
	}
	for _, id := range ids {
		v := b.vulns[id]
		if v.Title == "" {
			v.Title = e.Summary
		}
		if v.Description == "" {
			v.Description = e.Details
		}
		for _, r := range e.References {
			v.References = appendUnique(v.References, r.URL)
		}
		v.References = appendUnique(v.References, osvURL(e.ID))
		v.CweIDs = append(v.CweIDs, e.DatabaseSpecific.CWEIDs...)
		if sev, err := types.NewSeverity(ghsaSeverity(e.DatabaseSpecific.Severity)); err == nil && sev != types.SeverityUnknown {
			if v.VendorSeverity == nil {
				v.VendorSeverity = types.VendorSeverity{}
			}
			v.VendorSeverity[source] = sev
		}
		for _, s := range e.Severity {
			if s.Type == "CVSS_V3" {
				if v.CVSS == nil {
					v.CVSS = types.VendorCVSS{}
				}
				v.CVSS[source] = types.CVSS{V3Vector: s.Score}
			}
		}
		if !e.Published.IsZero() {
			p := e.Published
			v.PublishedDate = &p
		}
		if !e.Modified.IsZero() && e.Modified.Year() > 1 {
			m := e.Modified
			v.LastModifiedDate = &m
		}
		b.vulns[id] = v
	}
	return nil
}

// rangeString writes an OSV range as trivy-db does: "<1.2.3",
// ">=1.0.0, <1.2.3", ">=1.0.0" or "=1.0.0".
func rangeString(from, to string, toIncluded bool) string {
	if toIncluded && from == to {
		return "=" + from
	}
	var upper string
	if to != "" {
		upper = "<" + to
		if toIncluded {
			upper = "<=" + to
		}
	}
	switch {
	case upper == "":
		return ">=" + from
	case from == "0" || from == "":
		return upper
	}
	return ">=" + from + ", " + upper
}

// vulnIDs returns the IDs an OSV record is stored under: its CVE aliases
// when it has any, else its own ID (as trivy-db does).
func vulnIDs(id string, aliases []string) []string {
	var cves []string
	for _, a := range append(append([]string(nil), aliases...), id) {
		if strings.HasPrefix(a, "CVE-") {
			cves = append(cves, a)
		}
	}
	if len(cves) == 0 {
		return []string{id}
	}
	return cves
}

func osvURL(id string) string {
	switch {
	case strings.HasPrefix(id, "GO-"):
		return "https://pkg.go.dev/vuln/" + id
	case strings.HasPrefix(id, "GHSA-"):
		return "https://github.com/advisories/" + id
	}
	return ""
}

func appendUnique(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// debianFact is one entry of the debian-bookworm lists: a binary package
// whose bookworm-security version fixes the CVEs its changelog names.
type debianFact struct {
	Package   string   `json:"package"`
	Source    string   `json:"source"`
	Installed string   `json:"installed"`
	Fixed     string   `json:"fixed"`
	CVEs      []string `json:"cves"`
}

// loadDebian turns Debian facts into "debian 12" advisories keyed by source
// package. An update whose changelog names no CVE gets an UpdateIDPrefix ID.
func (b *builder) loadDebian(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var facts []debianFact
	if err := json.Unmarshal(raw, &facts); err != nil {
		return fmt.Errorf("parse Debian facts: %w", err)
	}
	for i, f := range facts {
		if f.Source == "" || f.Fixed == "" {
			return fmt.Errorf("entry %d (%s) has no source or fixed version", i, f.Package)
		}
		ids := f.CVEs
		if len(ids) == 0 {
			ids = []string{UpdateIDPrefix + f.Source + "-" + f.Fixed}
		}
		for _, id := range ids {
			k := advKey{BucketDebian12, f.Source, id}
			if old, ok := b.advisories[k]; ok {
				if old.FixedVersion != f.Fixed {
					return fmt.Errorf("%s in %s: fixed in %s and in %s", id, f.Source, old.FixedVersion, f.Fixed)
				}
				continue
			}
			b.advisories[k] = &types.Advisory{FixedVersion: f.Fixed}
			v := b.vulns[id]
			if strings.HasPrefix(id, UpdateIDPrefix) {
				v.Title = fmt.Sprintf("%s: bookworm-security update %s (no CVE named in its changelog)", f.Source, f.Fixed)
				v.References = appendUnique(v.References, "https://tracker.debian.org/pkg/"+f.Source)
			} else {
				v.References = appendUnique(v.References, "https://security-tracker.debian.org/tracker/"+id)
			}
			b.vulns[id] = v
		}
	}
	return nil
}

// write stores everything in a new trivy.db in dir.
func (b *builder) write(dir string) (BuildStats, error) {
	var st BuildStats
	db, err := bolt.Open(trivydb.Path(dir), 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return st, err
	}
	keys := make([]advKey, 0, len(b.advisories))
	for k := range b.advisories {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		if a.bucket != c.bucket {
			return a.bucket < c.bucket
		}
		if a.pkg != c.pkg {
			return a.pkg < c.pkg
		}
		return a.id < c.id
	})
	err = db.Update(func(tx *bolt.Tx) error {
		for bucket, src := range b.sources {
			if err := putJSON(tx, []string{"data-source"}, bucket, src); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := putJSON(tx, []string{k.bucket, k.pkg}, k.id, b.advisories[k]); err != nil {
				return err
			}
			st.Advisories++
		}
		if err := b.writeOS(tx, &st); err != nil {
			return err
		}
		for id, v := range b.vulns {
			if err := putJSON(tx, []string{"vulnerability"}, id, v); err != nil {
				return err
			}
			st.Vulnerabilities++
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return st, err
}

func putJSON(tx *bolt.Tx, buckets []string, key string, v any) error {
	bkt, err := tx.CreateBucketIfNotExists([]byte(buckets[0]))
	if err != nil {
		return fmt.Errorf("bucket %q: %w", buckets[0], err)
	}
	for _, name := range buckets[1:] {
		if bkt, err = bkt.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %q: %w", name, err)
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return bkt.Put([]byte(key), raw)
}
