package vuln

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

var (
	dbOnce sync.Once
	dbDir  string
	dbErr  error
)

func corpusDB(t *testing.T) *vulndb.DB {
	t.Helper()
	src := filepath.Join(testenv.SharedDir(t), "corpora", "advisories")
	dbOnce.Do(func() {
		dbDir, dbErr = os.MkdirTemp("", "taskguard-vuln-")
		if dbErr == nil {
			_, dbErr = vulndb.Build(context.Background(), dbDir, src, time.Now())
		}
	})
	if dbErr != nil {
		t.Fatal(dbErr)
	}
	db, err := vulndb.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dbDir != "" {
		os.RemoveAll(dbDir)
	}
	os.Exit(code)
}

func TestComparers(t *testing.T) {
	tests := []struct {
		name   string
		cmp    compareFunc
		a, b   string
		expect int
	}{
		{"deb tilde", compareDeb, "1.0~rc1", "1.0", -1},
		{"deb epoch", compareDeb, "1:1.0", "2.0", 1},
		{"deb security", compareDeb, "5.36.0-7+deb12u3", "5.36.0-7+deb12u4", -1},
		{"deb equal", compareDeb, "10.42-1+deb12u2", "10.42-1+deb12u2", 0},
		{"apk revision", compareAPK, "3.1.4-r5", "3.1.4-r10", -1},
		{"apk suffix", compareAPK, "1.2.3_rc1-r0", "1.2.3-r0", -1},
		{"rpm release", compareRPM, "1.0-1.el9", "1.0-1.el9_2", -1},
		{"rpm epoch", compareRPM, "1:1.0-1", "2.0-1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cmp(tt.a, tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if sign(got) != tt.expect {
				t.Errorf("compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.expect)
			}
		})
	}
	if _, err := compareDeb("not a version!", "1.0"); err == nil {
		t.Error("bad deb version: no error")
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestMatchers(t *testing.T) {
	tests := []struct {
		name        string
		match       matchFunc
		version     string
		constraints []string
		want        bool
	}{
		{"go below fix", matchSemver, "v1.5.0", []string{"<1.6.0"}, true},
		{"go at fix", matchSemver, "v1.6.0", []string{"<1.6.0"}, false},
		{"go range", matchSemver, "v1.2.3", []string{">=1.0.0, <1.2.6"}, true},
		{"go pseudo-version", matchSemver, "v0.0.0-20200101000000-abcdef123456", []string{"<0.1.0"}, true},
		// OSV "introduced: 0" becomes no lower bound ("<fix") or ">=0" when
		// nothing fixed it: both cover pseudo-versions (trivy misses them).
		{"go pseudo-version, introduced 0 never fixed", matchSemver, "v0.0.0-20200101000000-abcdef123456", []string{">=0"}, true},
		{"go pseudo-version after the fix", matchSemver, "v0.2.1-0.20210101000000-abcdef123456", []string{"<0.1.0"}, false},
		// npm versions written with a leading v (package.json allows it).
		{"npm leading v", matchSemver, "v1.2.5", []string{">=1.0.0, <1.2.6"}, true},
		{"npm leading v fixed", matchSemver, "v1.2.6", []string{">=1.0.0, <1.2.6"}, false},
		{"npm second range", matchSemver, "0.2.1", []string{">=1.0.0, <1.2.6", "<0.2.4"}, true},
		{"npm exact", matchSemver, "1.2.5", []string{"=1.2.5"}, true},
		{"pep440 pre", matchPEP440, "2.0.0rc1", []string{"<2.0.0"}, true},
		{"pep440 post", matchPEP440, "2.0.0.post1", []string{"<2.0.0"}, false},
		{"maven rc before release", matchMaven, "2.15.0-rc1", []string{">=2.0.0, <2.15.0"}, true},
		{"maven sp after release", matchMaven, "2.15.0-sp1", []string{">=2.0.0, <2.15.0"}, false},
		{"maven range", matchMaven, "2.14.1", []string{">=2.0.0, <2.15.0"}, true},
		{"maven final", matchMaven, "5.3.17.RELEASE", []string{"<5.3.18"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.match(tt.version, tt.constraints)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("match(%s, %q) = %v, want %v", tt.version, tt.constraints, got, tt.want)
			}
		})
	}
}

func pkg(typ, name, version string) analyzer.Package {
	return analyzer.Package{Type: typ, Name: name, Version: version, Location: analyzer.Location{Path: "p"}}
}

func ids(fs []Finding, pkgName string) []string {
	var out []string
	for _, f := range fs {
		if f.PkgName == pkgName {
			out = append(out, f.VulnerabilityID+" fixed:"+f.FixedVersion)
		}
	}
	sort.Strings(out)
	return out
}

func TestDetectLanguagePackages(t *testing.T) {
	db := corpusDB(t)
	inv := &analyzer.Inventory{Packages: []analyzer.Package{
		pkg(analyzer.TypeGoBinary, "github.com/gin-gonic/gin", "v1.5.0"),
		pkg(analyzer.TypeNpm, "lodash", "4.17.20"),
		pkg(analyzer.TypeNpm, "minimist", "1.2.5"),
		pkg(analyzer.TypeNpm, "minimist", "1.2.6"),
		pkg("cocoapods", "Alamofire", "5.0.0"),
		pkg(analyzer.TypeJar, "org.example:lib", "1.0"),
	}}
	res, err := Detect(context.Background(), db, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Findings, "lodash"); !reflect.DeepEqual(got, []string{"CVE-2021-23337 fixed:4.17.21"}) {
		t.Errorf("lodash 4.17.20 findings = %v", got)
	}
	var minimist []string
	for _, f := range res.Findings {
		if f.PkgName == "minimist" {
			minimist = append(minimist, f.InstalledVersion+" "+f.VulnerabilityID+" "+f.Severity+" "+f.SeveritySource)
		}
	}
	if !reflect.DeepEqual(minimist, []string{"1.2.5 CVE-2021-44906 CRITICAL ghsa"}) {
		t.Errorf("minimist findings = %v", minimist)
	}
	gin := ids(res.Findings, "github.com/gin-gonic/gin")
	if len(gin) == 0 || !contains(gin, "CVE-2020-36567 fixed:1.6.0") {
		t.Errorf("gin v1.5.0 findings = %v", gin)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "cocoapods packages are not matched") {
		t.Errorf("warnings = %q", res.Warnings)
	}
	for _, f := range res.Findings {
		if f.Status != StatusFixed || f.PrimaryURL == "" || f.Title == "" {
			t.Errorf("finding lacks status, URL or title: %+v", f)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type debianFact struct {
	Package   string   `json:"package"`
	Source    string   `json:"source"`
	Installed string   `json:"installed"`
	Fixed     string   `json:"fixed"`
	CVEs      []string `json:"cves"`
}

// TestDetectDebianFacts feeds the installed packages of the shared Debian
// lists through matching and expects exactly those lists back.
func TestDetectDebianFacts(t *testing.T) {
	db := corpusDB(t)
	files, _ := filepath.Glob(filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm", "*.json"))
	if len(files) == 0 {
		t.Fatal("no Debian lists in the corpus")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var facts []debianFact
			if err := json.Unmarshal(raw, &facts); err != nil {
				t.Fatal(err)
			}
			inv := &analyzer.Inventory{OS: &analyzer.OS{Family: "debian", Name: "12.12"}}
			for _, f := range facts {
				inv.Packages = append(inv.Packages, analyzer.Package{Type: analyzer.TypeDpkg, Name: f.Package, Version: f.Installed, SrcName: f.Source, SrcVersion: f.Installed})
				// The fixed version of the same package must not be reported.
				inv.Packages = append(inv.Packages, analyzer.Package{Type: analyzer.TypeDpkg, Name: f.Package + "-fixed", Version: f.Fixed, SrcName: f.Source, SrcVersion: f.Fixed})
			}
			res, err := Detect(context.Background(), db, inv, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, f := range facts {
				cves := f.CVEs
				if len(cves) == 0 {
					cves = []string{vulndb.UpdateIDPrefix + f.Source + "-" + f.Fixed}
				}
				for _, c := range cves {
					want[f.Package+" "+f.Installed+" "+f.Fixed+" "+c] = true
				}
			}
			got := map[string]bool{}
			for _, f := range res.Findings {
				got[f.PkgName+" "+f.InstalledVersion+" "+f.FixedVersion+" "+f.VulnerabilityID] = true
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %d findings, want %d", len(got), len(want))
				for k := range got {
					if !want[k] {
						t.Errorf("unexpected: %s", k)
					}
				}
				for k := range want {
					if !got[k] {
						t.Errorf("missing: %s", k)
					}
				}
			}
		})
	}
}

func TestNormalizePython(t *testing.T) {
	for in, want := range map[string]string{"PyYAML": "pyyaml", "zope.interface": "zope-interface", "Foo__Bar-.baz": "foo-bar-baz"} {
		if got := normalizePython(in); got != want {
			t.Errorf("normalizePython(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestDetectUnsupportedOS(t *testing.T) {
	db := corpusDB(t)
	inv := &analyzer.Inventory{
		OS:       &analyzer.OS{Family: "plan9", Name: "4"},
		Packages: []analyzer.Package{pkg(analyzer.TypeDpkg, "perl-base", "5.36.0-7+deb12u3")},
	}
	res, err := Detect(context.Background(), db, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "plan9 4 is not supported") {
		t.Errorf("findings %v, warnings %q", res.Findings, res.Warnings)
	}
}
