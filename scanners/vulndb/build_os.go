package vulndb

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/types"
	apkversion "github.com/knqyf263/go-apk-version"
	rpmversion "github.com/knqyf263/go-rpm-version"
	bolt "go.etcd.io/bbolt"
)

// Data sources of the OS advisories Build reads, with trivy-db's IDs (the
// severity a finding shows is the one its distribution gave).
var (
	sourceAlpine = types.DataSource{ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}
	sourceUbuntu = types.DataSource{ID: "ubuntu", Name: "Ubuntu CVE Tracker", URL: "https://git.launchpad.net/ubuntu-cve-tracker"}
	sourceAmazon = types.DataSource{ID: "amazon", Name: "Amazon Linux Security Center", URL: "https://alas.aws.amazon.com/"}
	sourceRocky  = types.DataSource{ID: "rocky", Name: "Rocky Linux updateinfo", URL: "https://download.rockylinux.org/pub/rocky/"}
	sourceAlma   = types.DataSource{ID: "alma", Name: "AlmaLinux Product Errata", URL: "https://errata.almalinux.org/"}
	sourceRedHat = types.DataSource{ID: "redhat", Name: "Red Hat OSV", URL: "https://security.access.redhat.com/data/osv/"}
)

// osData holds what the OS loaders collect beyond plain advisories: the
// per-architecture Rocky advisories and Red Hat's CPE-indexed entries.
type osData struct {
	rocky  map[advKey]*types.Advisories
	redhat map[[2]string]*redHatAdvisory // package, RHSA
	// redhatCPEs of each entry, by package, RHSA and entry index.
	redhatCPEs map[[2]string][][]string
	// redhatNVRs maps Red Hat image builds ("ubi9-container-9.1-1750-x86_64")
	// to the CPEs of their products (vuln-list-redhat's nvr-to-cpe.json).
	redhatNVRs map[string][]string
}

func (b *builder) osd() *osData {
	if b.os == nil {
		b.os = &osData{rocky: map[advKey]*types.Advisories{}, redhat: map[[2]string]*redHatAdvisory{}, redhatCPEs: map[[2]string][][]string{},
			redhatNVRs: map[string][]string{}}
	}
	return b.os
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	return nil
}

// addVuln merges what an OS advisory says about a vulnerability.
func (b *builder) addVuln(id string, source types.SourceID, sev types.Severity, title, desc string, refs []string) {
	v := b.vulns[id]
	if v.Title == "" {
		v.Title = title
	}
	if v.Description == "" {
		v.Description = desc
	}
	for _, r := range refs {
		v.References = appendUnique(v.References, r)
	}
	if sev != types.SeverityUnknown {
		if v.VendorSeverity == nil {
			v.VendorSeverity = types.VendorSeverity{}
		}
		v.VendorSeverity[source] = sev
	}
	b.vulns[id] = v
}

// putFixed records "fixed in version" for pkg in bucket; a second fix of
// the same flaw keeps the lower version (the first that fixes it).
func (b *builder) putFixed(bucket, pkg, id, fixed string, cmp func(a, c string) int) {
	k := advKey{bucket, pkg, id}
	if old, ok := b.advisories[k]; ok && (cmp == nil || cmp(old.FixedVersion, fixed) <= 0) {
		return
	}
	b.advisories[k] = &types.Advisory{FixedVersion: fixed}
}

func compareRPM(a, c string) int { return rpmversion.NewVersion(a).Compare(rpmversion.NewVersion(c)) }

// rpmEVR writes an rpm version as trivy-db does: the epoch only when not 0.
func rpmEVR(epoch, version, release string) string {
	v := version
	if epoch != "" && epoch != "0" {
		v = epoch + ":" + v
	}
	if release != "" {
		v += "-" + release
	}
	return v
}

// --- Alpine secdb ---------------------------------------------------------

// alpineSecfixes is one package of Alpine's secdb: fixed version → IDs.
type alpineSecfixes struct {
	Name          string              `json:"name"`
	Secfixes      map[string][]string `json:"secfixes"`
	Distroversion string              `json:"distroversion"`
}

// loadAlpine reads an Alpine secdb file, either as secdb.alpinelinux.org
// publishes it (v3.19/main.json: "packages": [{"pkg": {...}}]) or one
// package per file as vuln-list (trivy-db's input) keeps it.
func (b *builder) loadAlpine(path string) error {
	var f struct {
		alpineSecfixes
		Packages []struct {
			Pkg alpineSecfixes `json:"pkg"`
		} `json:"packages"`
	}
	if err := readJSON(path, &f); err != nil {
		return err
	}
	if f.Name == "" && len(f.Packages) == 0 {
		return fmt.Errorf("secdb file with neither a package name nor packages")
	}
	pkgs := []alpineSecfixes{f.alpineSecfixes}
	if f.Name == "" {
		pkgs = pkgs[:0]
		for _, p := range f.Packages {
			p.Pkg.Distroversion = f.Distroversion
			pkgs = append(pkgs, p.Pkg)
		}
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.Distroversion, "v")
		if p.Name == "" || rel == "" {
			return fmt.Errorf("secdb package without name or distroversion")
		}
		bucket := "alpine " + rel
		b.sources[bucket] = sourceAlpine
		for fixed, ids := range p.Secfixes {
			for _, raw := range ids {
				// "CVE-2017-2616 (+ regression fix)": the CVE first, else a GHSA.
				var id string
				for _, w := range strings.Fields(raw) {
					w = strings.ReplaceAll(w, "CVE_", "CVE-")
					if strings.HasPrefix(w, "CVE-") {
						id = w
						break
					}
					if strings.HasPrefix(w, "GHSA-") && id == "" {
						id = w
					}
				}
				if id == "" {
					continue
				}
				b.putFixed(bucket, p.Name, id, fixed, compareAPKVersions)
				b.addVuln(id, sourceAlpine.ID, types.SeverityUnknown, "", "", nil)
			}
		}
	}
	return nil
}

// --- Ubuntu CVE tracker ---------------------------------------------------

// ubuntuReleases maps the tracker's release names to version buckets.
var ubuntuReleases = map[string]string{
	"trusty": "14.04", "xenial": "16.04", "bionic": "18.04", "focal": "20.04",
	"jammy": "22.04", "kinetic": "22.10", "lunar": "23.04", "mantic": "23.10",
	"noble": "24.04", "oracular": "24.10", "plucky": "25.04", "questing": "25.10", "resolute": "26.04",
	// Expanded Security Maintenance, as trivy-db lays it out: infra and
	// apps of a release share its "-ESM" bucket.
	"precise/esm": "12.04-ESM", "trusty/esm": "14.04-ESM",
	"esm-infra/xenial": "16.04-ESM", "esm-apps/xenial": "16.04-ESM",
	"esm-infra/bionic": "18.04-ESM", "esm-apps/bionic": "18.04-ESM",
	"esm-infra/focal": "20.04-ESM", "esm-apps/focal": "20.04-ESM",
}

// ubuntuStatuses are the tracker statuses that mean "affected" ("released"
// with its fixed version in the note); not-affected, DNE, ignored and
// needs-triage are left out, as trivy-db does.
var ubuntuStatuses = []string{"needed", "deferred", "pending", "released"}

func ubuntuSeverity(priority string) types.Severity {
	switch priority {
	case "negligible", "low":
		return types.SeverityLow
	case "medium":
		return types.SeverityMedium
	case "high":
		return types.SeverityHigh
	case "critical":
		return types.SeverityCritical
	}
	return types.SeverityUnknown
}

// loadUbuntu reads one CVE of the Ubuntu CVE tracker in vuln-list's JSON
// form (trivy-db's input): Patches[source package][release] = status.
func (b *builder) loadUbuntu(path string) error {
	var c struct {
		Candidate   string
		Priority    string
		Description string `json:"description"`
		References  []string
		Patches     map[string]map[string]struct{ Status, Note string }
	}
	if err := readJSON(path, &c); err != nil {
		return err
	}
	if !strings.HasPrefix(c.Candidate, "CVE-") {
		return fmt.Errorf("an Ubuntu CVE without a CVE Candidate")
	}
	found := false
	for pkg, rels := range c.Patches {
		for _, rel := range slices.Sorted(maps.Keys(rels)) { // one order: ESM infra and apps share a bucket
			st := rels[rel]
			ver, ok := ubuntuReleases[rel]
			if !ok || !slices.Contains(ubuntuStatuses, st.Status) {
				continue
			}
			bucket := "ubuntu " + ver
			b.sources[bucket] = sourceUbuntu
			adv := &types.Advisory{}
			if st.Status == "released" {
				if st.Note == "" {
					return fmt.Errorf("%s %s %s: released without a version", c.Candidate, pkg, rel)
				}
				adv.FixedVersion = st.Note
			}
			k := advKey{bucket, pkg, c.Candidate}
			if prev, ok := b.advisories[k]; ok && prev.FixedVersion != "" && adv.FixedVersion == "" {
				continue // an ESM bucket's infra and apps entries: a fix wins
			}
			b.advisories[k] = adv
			found = true
		}
	}
	if found {
		b.addVuln(c.Candidate, sourceUbuntu.ID, ubuntuSeverity(c.Priority), "", c.Description,
			append([]string{"https://ubuntu.com/security/" + c.Candidate}, c.References...))
	}
	return nil
}

// --- Amazon Linux ALAS ----------------------------------------------------

// rpmPkg is a package of an ALAS or Rocky erratum.
type rpmPkg struct {
	Name    string `json:"name"`
	Epoch   string `json:"epoch"`
	Version string `json:"version"`
	Release string `json:"release"`
	Arch    string `json:"arch"`
}

type erratumRef struct {
	Href string `json:"href"`
	ID   string `json:"id"`
	Type string `json:"type"`
}

// rhSeverity maps the Red Hat family's impact words.
func rhSeverity(s string) types.Severity {
	switch strings.ToLower(s) {
	case "low":
		return types.SeverityLow
	case "medium", "moderate":
		return types.SeverityMedium
	case "important":
		return types.SeverityHigh
	case "critical":
		return types.SeverityCritical
	}
	return types.SeverityUnknown
}

// loadAmazon reads one ALAS in vuln-list's form (amazon/<release>/<id>.json,
// trivy-db's input); the folder names the release: 1, 2, 2022 or 2023.
func (b *builder) loadAmazon(path string) error {
	rel := filepath.Base(filepath.Dir(path))
	switch rel {
	case "1", "2", "2022", "2023":
	default:
		return fmt.Errorf("release folder %q of an Amazon Linux advisory is not 1, 2, 2022 or 2023", rel)
	}
	var a struct {
		ID          string       `json:"id"`
		Title       string       `json:"title"`
		Severity    string       `json:"severity"`
		Description string       `json:"description"`
		Packages    []rpmPkg     `json:"packages"`
		References  []erratumRef `json:"references"`
		CveIDs      []string     `json:"cveids"`
	}
	if err := readJSON(path, &a); err != nil {
		return err
	}
	bucket := "amazon linux " + rel
	b.sources[bucket] = sourceAmazon
	var refs []string
	for _, r := range a.References {
		refs = append(refs, r.Href)
	}
	for _, id := range a.CveIDs {
		for _, p := range a.Packages {
			b.putFixed(bucket, p.Name, id, rpmEVR(p.Epoch, p.Version, p.Release), compareRPM)
			if adv := b.advisories[advKey{bucket, p.Name, id}]; !slices.Contains(adv.VendorIDs, a.ID) {
				adv.VendorIDs = append(adv.VendorIDs, a.ID)
			}
		}
		b.addVuln(id, sourceAmazon.ID, rhSeverity(a.Severity), "", a.Description, refs)
	}
	return nil
}

// --- Rocky Linux errata ---------------------------------------------------

// loadRocky reads one Rocky Linux erratum (RLSA) in vuln-list's form
// (trivy-db's input) under rocky/<release>/: per CVE and package (modular
// packages as "module:stream::name"), the fixed version per architecture.
func (b *builder) loadRocky(path string) error {
	rel, _, _ := strings.Cut(filepath.Base(filepath.Dir(path)), ".")
	var e struct {
		ID          string       `json:"id"`
		Title       string       `json:"title"`
		Severity    string       `json:"severity"`
		Description string       `json:"description"`
		References  []erratumRef `json:"references"`
		CveIDs      []string     `json:"cveids"`
		Collections []struct {
			Module struct {
				Name   string `json:"name"`
				Stream string `json:"stream"`
			} `json:"module"`
			Packages []rpmPkg `json:"packages"`
		} `json:"collections"`
	}
	if err := readJSON(path, &e); err != nil {
		return err
	}
	if _, err := strconv.Atoi(rel); err != nil || e.ID == "" {
		return fmt.Errorf("a Rocky erratum %q under release folder %q (want rocky/<major>/)", e.ID, rel)
	}
	bucket := "rocky " + rel
	b.sources[bucket] = sourceRocky
	var refs []string
	for _, r := range e.References {
		refs = append(refs, r.Href)
	}
	d := b.osd()
	for _, id := range e.CveIDs {
		for _, c := range e.Collections {
			prefix := ""
			if c.Module.Name != "" && c.Module.Stream != "" {
				prefix = c.Module.Name + ":" + c.Module.Stream + "::"
			}
			for _, p := range c.Packages {
				k := advKey{bucket, prefix + p.Name, id}
				fixed := rpmEVR(p.Epoch, p.Version, p.Release)
				adv := d.rocky[k]
				if adv == nil {
					adv = &types.Advisories{}
					d.rocky[k] = adv
				}
				if p.Arch == "x86_64" || p.Arch == "noarch" || adv.FixedVersion == "" {
					adv.FixedVersion = fixed
				}
				i := slices.IndexFunc(adv.Entries, func(a types.Advisory) bool { return a.FixedVersion == fixed })
				if i < 0 {
					adv.Entries = append(adv.Entries, types.Advisory{FixedVersion: fixed})
					i = len(adv.Entries) - 1
				}
				en := &adv.Entries[i]
				if !slices.Contains(en.Arches, p.Arch) {
					en.Arches = append(en.Arches, p.Arch)
					sort.Strings(en.Arches)
				}
				if !slices.Contains(en.VendorIDs, e.ID) {
					en.VendorIDs = append(en.VendorIDs, e.ID)
				}
			}
		}
		b.addVuln(id, sourceRocky.ID, rhSeverity(e.Severity), e.Title, e.Description, refs)
	}
	return nil
}

// --- AlmaLinux errata -----------------------------------------------------

// loadAlma reads one AlmaLinux erratum (ALSA) in vuln-list's form
// (trivy-db's input) under alma/<release>/: the x86_64 and noarch packages'
// fixed versions per CVE reference, modular ones as "module:stream::name".
func (b *builder) loadAlma(path string) error {
	rel, _, _ := strings.Cut(filepath.Base(filepath.Dir(path)), ".")
	var e struct {
		ID          string       `json:"updateinfo_id"`
		Title       string       `json:"title"`
		Severity    string       `json:"severity"`
		Description string       `json:"description"`
		References  []erratumRef `json:"references"`
		Pkglist     struct {
			Packages []rpmPkg `json:"packages"`
			Module   struct {
				Name   string `json:"name"`
				Stream string `json:"stream"`
			} `json:"module"`
		} `json:"pkglist"`
	}
	if err := readJSON(path, &e); err != nil {
		return err
	}
	if _, err := strconv.Atoi(rel); err != nil || e.ID == "" {
		return fmt.Errorf("an AlmaLinux erratum %q under release folder %q (want alma/<major>/)", e.ID, rel)
	}
	bucket := "alma " + rel
	b.sources[bucket] = sourceAlma
	var refs []string
	for _, r := range e.References {
		if r.Type != "cve" {
			refs = append(refs, r.Href)
		}
	}
	prefix := ""
	if m := e.Pkglist.Module; m.Name != "" && m.Stream != "" {
		prefix = m.Name + ":" + m.Stream + "::"
	}
	for _, r := range e.References {
		if r.Type != "cve" || r.ID == "" {
			continue
		}
		for _, p := range e.Pkglist.Packages {
			if p.Arch != "noarch" && p.Arch != "x86_64" {
				continue
			}
			b.putFixed(bucket, prefix+p.Name, r.ID, rpmEVR(p.Epoch, p.Version, p.Release), compareRPM)
			if adv := b.advisories[advKey{bucket, prefix + p.Name, r.ID}]; !slices.Contains(adv.VendorIDs, e.ID) {
				adv.VendorIDs = append(adv.VendorIDs, e.ID)
			}
		}
		b.addVuln(r.ID, sourceAlma.ID, rhSeverity(e.Severity), e.Title, e.Description, refs)
	}
	return nil
}

// --- Red Hat (OSV) --------------------------------------------------------

// redHatContentSets maps the repositories (content sets) Trivy assumes for
// an image without build info to the CPEs Red Hat publishes them under
// (Red Hat's repository-to-cpe.json).
var redHatContentSets = map[string][]string{
	"rhel-7-server-rpms":               {"cpe:/o:redhat:enterprise_linux:7::server"},
	"rhel-7-server-extras-rpms":        {"cpe:/a:redhat:rhel_extras:7"},
	"rhel-8-for-x86_64-baseos-rpms":    {"cpe:/o:redhat:enterprise_linux:8::baseos"},
	"rhel-8-for-x86_64-appstream-rpms": {"cpe:/a:redhat:enterprise_linux:8::appstream"},
	"rhel-9-for-x86_64-baseos-rpms":    {"cpe:/o:redhat:enterprise_linux:9::baseos"},
	"rhel-9-for-x86_64-appstream-rpms": {"cpe:/a:redhat:enterprise_linux:9::appstream"},
}

// redHatCPE turns an OSV "Red Hat:enterprise_linux:9::baseos" ecosystem into
// the product CPE.
func redHatCPE(ecosystem string) (string, bool) {
	rest, ok := strings.CutPrefix(ecosystem, "Red Hat:")
	if !ok || rest == "" {
		return "", false
	}
	part := "a"
	switch {
	case strings.HasSuffix(rest, "::baseos"), strings.HasSuffix(rest, "::server"),
		strings.HasSuffix(rest, "::client"), strings.HasSuffix(rest, "::workstation"):
		part = "o"
	}
	return "cpe:/" + part + ":redhat:" + rest, true
}

// loadRedHat reads one Red Hat security advisory (RHSA) in OSV form, as
// Red Hat publishes it: per "Red Hat:<product>" ecosystem, the binary
// packages and the version that fixes them; the CVEs in aliases/upstream.
// It writes trivy-db's "Red Hat" layout: an entry per fixed version with
// the CPE indices of the products it applies to.
// loadRedHatNVRs reads redhat-cpe/nvr-to-cpe.json, the mapping of Red Hat
// image builds to the CPEs of their products that trivy-db stores in the
// "nvr" bucket of "Red Hat CPE" (from vuln-list-redhat's cpe/nvr-to-cpe.json).
func (b *builder) loadRedHatNVRs(path string) error {
	if filepath.Base(path) != "nvr-to-cpe.json" {
		return fmt.Errorf("not a Red Hat CPE mapping this builder reads (want nvr-to-cpe.json)")
	}
	var m map[string][]string
	if err := readJSON(path, &m); err != nil {
		return err
	}
	d := b.osd()
	for nvr, cpes := range m {
		for _, c := range cpes {
			if !strings.HasPrefix(c, "cpe:/") {
				return fmt.Errorf("build %s: %q is not a CPE", nvr, c)
			}
			if !slices.Contains(d.redhatNVRs[nvr], c) {
				d.redhatNVRs[nvr] = append(d.redhatNVRs[nvr], c)
			}
		}
	}
	return nil
}

func (b *builder) loadRedHat(path string) error {
	var e struct {
		osvEntry
		Upstream []string `json:"upstream"`
		Related  []string `json:"related"`
	}
	if err := readJSON(path, &e); err != nil {
		return err
	}
	if !strings.HasPrefix(e.ID, "RHSA-") {
		return fmt.Errorf("the Red Hat OSV record %q is not an RHSA", e.ID)
	}
	if e.Withdrawn != "" {
		return nil
	}
	var cves []string
	for _, id := range slices.Concat(e.Aliases, e.Upstream, e.Related) {
		if strings.HasPrefix(id, "CVE-") && !slices.Contains(cves, id) {
			cves = append(cves, id)
		}
	}
	if len(cves) == 0 {
		return nil
	}
	sort.Strings(cves)
	impact, _, _ := strings.Cut(e.Summary, ":")
	sev := rhSeverity(impact)
	d := b.osd()
	for _, aff := range e.Affected {
		cpe, ok := redHatCPE(aff.Package.Ecosystem)
		if !ok || aff.Package.Name == "" {
			continue
		}
		for _, r := range aff.Ranges {
			if r.Type != "ECOSYSTEM" {
				continue
			}
			for _, ev := range r.Events {
				if ev.Fixed == "" {
					continue
				}
				fixed := strings.TrimPrefix(ev.Fixed, "0:")
				k := [2]string{aff.Package.Name, e.ID}
				adv := d.redhat[k]
				if adv == nil {
					adv = &redHatAdvisory{}
					d.redhat[k] = adv
				}
				i := slices.IndexFunc(adv.Entries, func(en redHatEntry) bool { return en.FixedVersion == fixed })
				if i < 0 {
					en := redHatEntry{FixedVersion: fixed}
					for _, c := range cves {
						en.Cves = append(en.Cves, redHatCVE{ID: c, Severity: sev})
					}
					adv.Entries = append(adv.Entries, en)
					d.redhatCPEs[k] = append(d.redhatCPEs[k], nil)
					i = len(adv.Entries) - 1
				}
				if !slices.Contains(d.redhatCPEs[k][i], cpe) {
					d.redhatCPEs[k][i] = append(d.redhatCPEs[k][i], cpe)
				}
			}
		}
	}
	b.sources[BucketRedHat] = sourceRedHat
	var refs []string
	for _, r := range e.References {
		refs = append(refs, r.URL)
	}
	refs = append(refs, "https://access.redhat.com/errata/"+e.ID)
	for _, c := range cves {
		b.addVuln(c, sourceRedHat.ID, sev, "", "", refs)
		if !e.Published.IsZero() {
			v := b.vulns[c]
			if v.PublishedDate == nil {
				p := e.Published.UTC().Truncate(time.Second)
				v.PublishedDate = &p
				b.vulns[c] = v
			}
		}
	}
	return nil
}

// writeOS stores the Rocky and Red Hat layouts collected by the loaders.
func (b *builder) writeOS(tx *bolt.Tx, st *BuildStats) error {
	if b.os == nil {
		return nil
	}
	d := b.os
	rk := make([]advKey, 0, len(d.rocky))
	for k := range d.rocky {
		rk = append(rk, k)
	}
	sort.Slice(rk, func(i, j int) bool {
		return rk[i].bucket+"\x00"+rk[i].pkg+"\x00"+rk[i].id < rk[j].bucket+"\x00"+rk[j].pkg+"\x00"+rk[j].id
	})
	for _, k := range rk {
		if err := putJSON(tx, []string{k.bucket, k.pkg}, k.id, d.rocky[k]); err != nil {
			return err
		}
		st.Advisories++
	}
	if len(d.redhat) == 0 {
		return nil
	}
	// The CPE list: every CPE an entry or a content set names, sorted.
	set := map[string]bool{}
	for _, cpes := range d.redhatCPEs {
		for _, list := range cpes {
			for _, c := range list {
				set[c] = true
			}
		}
	}
	for _, cpes := range redHatContentSets {
		for _, c := range cpes {
			set[c] = true
		}
	}
	for _, cpes := range d.redhatNVRs {
		for _, c := range cpes {
			set[c] = true
		}
	}
	list := make([]string, 0, len(set))
	for c := range set {
		list = append(list, c)
	}
	sort.Strings(list)
	index := func(cpes []string) []int {
		var out []int
		for _, c := range cpes {
			out = append(out, sort.SearchStrings(list, c))
		}
		sort.Ints(out)
		return out
	}
	for i, c := range list {
		if err := putJSON(tx, []string{BucketRedHatCPE, "cpe"}, strconv.Itoa(i), c); err != nil {
			return err
		}
	}
	for cs, cpes := range redHatContentSets {
		if err := putJSON(tx, []string{BucketRedHatCPE, "repository"}, cs, index(cpes)); err != nil {
			return err
		}
	}
	for nvr, cpes := range d.redhatNVRs {
		if err := putJSON(tx, []string{BucketRedHatCPE, "nvr"}, nvr, index(cpes)); err != nil {
			return err
		}
	}
	for k, adv := range d.redhat {
		for i := range adv.Entries {
			adv.Entries[i].Affected = index(d.redhatCPEs[k][i])
		}
		if err := putJSON(tx, []string{BucketRedHat, k[0]}, k[1], adv); err != nil {
			return err
		}
		st.Advisories++
	}
	return nil
}

// compareAPKVersions orders apk versions; one that does not parse sorts as equal.
func compareAPKVersions(a, c string) int {
	va, err := apkversion.NewVersion(a)
	if err != nil {
		return 0
	}
	vc, err := apkversion.NewVersion(c)
	if err != nil {
		return 0
	}
	return va.Compare(vc)
}
