package vulndb

import (
	"strings"

	"github.com/aquasecurity/trivy-db/pkg/types"
)

// Language buckets Build writes from GitHub (and other OSV) advisories,
// named as trivy-db names them ("<ecosystem>::GitHub Security Advisory
// <GHSA ecosystem>").
const (
	BucketPip      = "pip::GitHub Security Advisory pip"
	BucketRubyGems = "rubygems::GitHub Security Advisory RubyGems"
	BucketCargo    = "cargo::GitHub Security Advisory Rust"
	BucketComposer = "composer::GitHub Security Advisory Composer"
	BucketNuGet    = "nuget::GitHub Security Advisory NuGet"
	BucketMaven    = "maven::GitHub Security Advisory Maven"
)

// languageSource is one folder of OSV records for one ecosystem.
type languageSource struct {
	// folder under the advisories directory ("ghsa-pip").
	folder string
	bucket string
	// osvEcosystem is the OSV "ecosystem" of the affected packages read
	// ("PyPI", "crates.io", ...); others in the same record are skipped.
	osvEcosystem string
	// ghsaEcosystem names the data source as trivy-db does.
	ghsaEcosystem string
	// normalize turns a package name into trivy-db's key.
	normalize func(string) string
}

// languageSources is the table of language advisory folders Build reads
// besides go-osv/ and ghsa-npm/.
var languageSources = []languageSource{
	{"ghsa-pip", BucketPip, "PyPI", "pip", normalizePipName},
	{"ghsa-rubygems", BucketRubyGems, "RubyGems", "RubyGems", strings.ToLower},
	{"ghsa-cargo", BucketCargo, "crates.io", "Rust", strings.ToLower},
	{"ghsa-composer", BucketComposer, "Packagist", "Composer", strings.ToLower},
	{"ghsa-nuget", BucketNuGet, "NuGet", "NuGet", strings.ToLower},
	{"ghsa-maven", BucketMaven, "Maven", "Maven", strings.ToLower},
}

// normalizePipName is trivy-db's key for a Python package: lower case and
// "_" as "-".
func normalizePipName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// buildStep is one folder Build reads (the type of Build's steps).
type buildStep = struct {
	folder string
	load   func(string) error
}

// languageSteps registers the language sources' data sources with b and
// returns the steps that load their folders.
func (b *builder) languageSteps() []buildStep {
	var steps []buildStep
	for _, s := range languageSources {
		b.sources[s.bucket] = types.DataSource{
			ID:   SourceGHSA,
			Name: "GitHub Security Advisory " + s.ghsaEcosystem,
			URL:  "https://github.com/advisories?query=type%3Areviewed+ecosystem%3A" + strings.ToLower(s.ghsaEcosystem),
		}
		steps = append(steps, buildStep{s.folder, func(p string) error { return b.loadLanguageOSV(p, s) }})
	}
	return steps
}

// loadLanguageOSV reads one OSV record of s's ecosystem into a builder of
// its own, then adds its advisories to b under trivy-db's package keys.
func (b *builder) loadLanguageOSV(path string, s languageSource) error {
	one := newBuilder()
	if err := one.loadOSV(path, s.bucket, SourceGHSA, s.osvEcosystem); err != nil {
		return err
	}
	for k, adv := range one.advisories {
		k.pkg = s.normalize(k.pkg)
		if old, ok := b.advisories[k]; ok {
			old.VulnerableVersions = append(old.VulnerableVersions, adv.VulnerableVersions...)
			old.PatchedVersions = append(old.PatchedVersions, adv.PatchedVersions...)
			continue
		}
		b.advisories[k] = adv
	}
	for id, v := range one.vulns {
		b.vulns[id] = mergeVulnerability(b.vulns[id], v)
	}
	return nil
}

// mergeVulnerability adds what add says of a vulnerability to what old
// (from another record) said: old's title and description win, the
// references, CWEs, severities and scores are merged.
func mergeVulnerability(old, add types.Vulnerability) types.Vulnerability {
	if old.Title == "" {
		old.Title = add.Title
	}
	if old.Description == "" {
		old.Description = add.Description
	}
	for _, r := range add.References {
		old.References = appendUnique(old.References, r)
	}
	for _, c := range add.CweIDs {
		old.CweIDs = appendUnique(old.CweIDs, c)
	}
	for src, sev := range add.VendorSeverity {
		if old.VendorSeverity == nil {
			old.VendorSeverity = types.VendorSeverity{}
		}
		if _, ok := old.VendorSeverity[src]; !ok {
			old.VendorSeverity[src] = sev
		}
	}
	for src, c := range add.CVSS {
		if old.CVSS == nil {
			old.CVSS = types.VendorCVSS{}
		}
		if _, ok := old.CVSS[src]; !ok {
			old.CVSS[src] = c
		}
	}
	if old.PublishedDate == nil {
		old.PublishedDate = add.PublishedDate
	}
	if old.LastModifiedDate == nil {
		old.LastModifiedDate = add.LastModifiedDate
	}
	return old
}

// ghsaSeverity turns GitHub's severity into trivy-db's name: GitHub says
// MODERATE where trivy-db says MEDIUM (as trivy-db's own ghsa source maps
// it).
func ghsaSeverity(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "MODERATE" {
		return "MEDIUM"
	}
	return s
}

// affectedGHSASpecific is GitHub's database_specific of one affected
// package.
type affectedGHSASpecific struct {
	// LastKnownAffectedVersionRange bounds a range GitHub knows no fix
	// for ("<= 1.2.3", "< 1.2.3").
	LastKnownAffectedVersionRange string `json:"last_known_affected_version_range"`
}

// boundOpenRanges applies GitHub's last known affected version to the
// ranges without an upper bound (">=1.0.0" becomes ">=1.0.0, <=1.2.3"), as
// trivy-db does: without it every later version would be reported.
func boundOpenRanges(vulnerable []string, lastKnown string) []string {
	bound := strings.ReplaceAll(strings.TrimSpace(lastKnown), " ", "")
	if bound == "" || !strings.HasPrefix(bound, "<") {
		return vulnerable
	}
	for i, v := range vulnerable {
		if strings.Contains(v, "<") || strings.HasPrefix(v, "=") {
			continue
		}
		vulnerable[i] = v + ", " + bound
	}
	return vulnerable
}
