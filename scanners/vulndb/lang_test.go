package vulndb

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/aquasecurity/trivy-db/pkg/types"
)

// TestBuildLanguageAdvisories builds a DB from the real language advisories
// under testdata and reads them back as trivy-db lays them out: one bucket
// per ecosystem named as trivy-db names it, packages under trivy-db's
// keys, OSV ranges as trivy-db's constraint strings.
func TestBuildLanguageAdvisories(t *testing.T) {
	dir := t.TempDir()
	st, err := Build(context.Background(), dir, "testdata/advisories", corpusNow)
	if err != nil {
		t.Fatal(err)
	}
	if st.Advisories != 7 || st.Vulnerabilities != 7 {
		t.Errorf("stats = %+v, want 7 advisories and 7 vulnerabilities", st)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	buckets, err := db.Buckets()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{BucketCargo, BucketComposer, BucketMaven, BucketNuGet, BucketPip, BucketRubyGems}
	sort.Strings(want)
	if !reflect.DeepEqual(buckets, want) {
		t.Errorf("buckets %q, want %q", buckets, want)
	}
	tests := []struct {
		bucket, pkg, id     string
		vulnerable, patched []string
		source              string
	}{
		{BucketPip, "requests", "CVE-2023-32681", []string{">=2.3.0, <2.31.0"}, []string{"2.31.0"}, "GitHub Security Advisory pip"},
		{BucketPip, "pyyaml", "CVE-2020-14343", []string{"<5.4"}, []string{"5.4"}, "GitHub Security Advisory pip"},
		{BucketRubyGems, "rack", "CVE-2022-30123", []string{"<2.0.9.1", ">=2.1, <2.1.4.1", ">=2.2, <2.2.3.1"}, []string{"2.0.9.1", "2.1.4.1", "2.2.3.1"}, "GitHub Security Advisory RubyGems"},
		{BucketCargo, "smallvec", "CVE-2021-25900", []string{">=0.6.3, <0.6.14", ">=1.0.0, <1.6.1"}, []string{"0.6.14", "1.6.1"}, "GitHub Security Advisory Rust"},
		{BucketComposer, "guzzlehttp/guzzle", "CVE-2022-29248", []string{"<6.5.6", ">=7.0.0, <7.4.3"}, []string{"6.5.6", "7.4.3"}, "GitHub Security Advisory Composer"},
		{BucketNuGet, "newtonsoft.json", "CVE-2024-21907", []string{"<13.0.1"}, []string{"13.0.1"}, "GitHub Security Advisory NuGet"},
		{BucketMaven, "org.apache.logging.log4j:log4j-core", "CVE-2021-44228", []string{">=2.13.0, <2.15.0", "<2.3.1", ">=2.4, <2.12.2"}, []string{"2.15.0", "2.3.1", "2.12.2"}, "GitHub Security Advisory Maven"},
	}
	for _, tt := range tests {
		advs, err := db.Advisories(tt.bucket, tt.pkg)
		if err != nil {
			t.Fatal(err)
		}
		if len(advs) != 1 {
			t.Errorf("%s %s: %d advisories, want 1", tt.bucket, tt.pkg, len(advs))
			continue
		}
		a := advs[0]
		if a.VulnerabilityID != tt.id || !reflect.DeepEqual(a.VulnerableVersions, tt.vulnerable) || !reflect.DeepEqual(a.PatchedVersions, tt.patched) {
			t.Errorf("%s %s: %s %q patched %q, want %s %q %q", tt.bucket, tt.pkg, a.VulnerabilityID, a.VulnerableVersions, a.PatchedVersions, tt.id, tt.vulnerable, tt.patched)
		}
		if a.DataSource == nil || a.DataSource.Name != tt.source || a.DataSource.ID != SourceGHSA {
			t.Errorf("%s %s: data source %+v, want %q", tt.bucket, tt.pkg, a.DataSource, tt.source)
		}
	}
	// Keys as trivy-db writes them: the original spelling finds nothing.
	for _, k := range [][2]string{{BucketPip, "PyYAML"}, {BucketNuGet, "Newtonsoft.Json"}} {
		if advs, err := db.Advisories(k[0], k[1]); err != nil || len(advs) != 0 {
			t.Errorf("%s %s: %d advisories (%v), want none under the unnormalized name", k[0], k[1], len(advs), err)
		}
	}
	// GitHub's MODERATE is trivy-db's MEDIUM.
	if v, ok, err := db.Vulnerability("CVE-2023-32681"); err != nil || !ok || v.VendorSeverity[SourceGHSA] != types.SeverityMedium {
		t.Errorf("CVE-2023-32681: severity %v (%v %v), want MEDIUM", v.VendorSeverity, ok, err)
	}
	v, ok, err := db.Vulnerability("CVE-2021-44228")
	if err != nil || !ok {
		t.Fatalf("CVE-2021-44228: %v %v", ok, err)
	}
	if v.VendorSeverity[SourceGHSA] != types.SeverityCritical || v.Title != "Remote code injection in Log4j" || v.CVSS[SourceGHSA].V3Vector == "" {
		t.Errorf("CVE-2021-44228 = %+v", v)
	}
}

// TestMergeVulnerability checks that a CVE published for two ecosystems
// keeps the first record's text and gains the second's references and
// scores.
func TestMergeVulnerability(t *testing.T) {
	a := types.Vulnerability{Title: "first", References: []string{"https://a"}, VendorSeverity: types.VendorSeverity{SourceGHSA: types.SeverityHigh}}
	b := types.Vulnerability{Title: "second", Description: "d", References: []string{"https://a", "https://b"}, CweIDs: []string{"CWE-20"},
		VendorSeverity: types.VendorSeverity{SourceGHSA: types.SeverityLow, "nvd": types.SeverityMedium}}
	got := mergeVulnerability(a, b)
	if got.Title != "first" || got.Description != "d" || !reflect.DeepEqual(got.References, []string{"https://a", "https://b"}) ||
		got.VendorSeverity[SourceGHSA] != types.SeverityHigh || got.VendorSeverity["nvd"] != types.SeverityMedium || len(got.CweIDs) != 1 {
		t.Errorf("merged = %+v", got)
	}
}

// TestBoundOpenRanges: GitHub's last known affected version closes a range
// that has no fix (as trivy-db does), and leaves closed ranges alone.
func TestBoundOpenRanges(t *testing.T) {
	for _, tt := range []struct {
		in        []string
		lastKnown string
		want      []string
	}{
		{[]string{">=2.26.11"}, "< 3.0.0", []string{">=2.26.11, <3.0.0"}},
		{[]string{">=0"}, "<= 1.9.1", []string{">=0, <=1.9.1"}},
		{[]string{">=3.26.11, <3.28.3"}, "<= 3.28.2", []string{">=3.26.11, <3.28.3"}},
		{[]string{"=1.0.0", "<2.0.0"}, "<= 2.0.0", []string{"=1.0.0", "<2.0.0"}},
		{[]string{">=1.0.0"}, "", []string{">=1.0.0"}},
		{[]string{">=1.0.0"}, "garbage", []string{">=1.0.0"}},
	} {
		got := boundOpenRanges(append([]string(nil), tt.in...), tt.lastKnown)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("boundOpenRanges(%q, %q) = %q, want %q", tt.in, tt.lastKnown, got, tt.want)
		}
	}
}
