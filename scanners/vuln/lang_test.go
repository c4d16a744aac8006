package vuln

import (
	"testing"

	"github.com/aquasecurity/trivy-db/pkg/types"
)

// TestLanguageVersionRules checks each new ecosystem's version rules on
// the ranges of real advisories, at and around their boundaries.
func TestLanguageVersionRules(t *testing.T) {
	tests := []struct {
		pkgType, version string
		adv              types.Advisory
		want             bool
	}{
		// rack, CVE-2022-30123: fixed in 2.0.9.1, 2.1.4.1, 2.2.3.1 (RubyGems' four-part versions).
		{"gem", "2.2.3", types.Advisory{VulnerableVersions: []string{"<2.0.9.1", ">=2.1, <2.1.4.1", ">=2.2, <2.2.3.1"}}, true},
		{"gem", "2.2.3.1", types.Advisory{VulnerableVersions: []string{"<2.0.9.1", ">=2.1, <2.1.4.1", ">=2.2, <2.2.3.1"}}, false},
		{"gem", "2.1.4", types.Advisory{VulnerableVersions: []string{"<2.0.9.1", ">=2.1, <2.1.4.1", ">=2.2, <2.2.3.1"}}, true},
		{"gem", "3.0.0.beta1", types.Advisory{VulnerableVersions: []string{">=2.2, <2.2.3.1"}}, false},
		{"gem", "2.2.3.1.rc1", types.Advisory{VulnerableVersions: []string{">=2.2, <2.2.3.1"}}, true}, // a pre-release sorts before its release
		// guzzlehttp/guzzle, CVE-2022-29248.
		{"composer", "7.4.2", types.Advisory{VulnerableVersions: []string{"<6.5.6", ">=7.0.0, <7.4.3"}}, true},
		{"composer", "v7.4.3", types.Advisory{VulnerableVersions: []string{"<6.5.6", ">=7.0.0, <7.4.3"}}, false},
		{"composer", "v6.5.5", types.Advisory{VulnerableVersions: []string{"<6.5.6", ">=7.0.0, <7.4.3"}}, true},
		// smallvec, CVE-2021-25900.
		{"cargo", "1.6.0", types.Advisory{VulnerableVersions: []string{">=0.6.3, <0.6.14", ">=1.0.0, <1.6.1"}}, true},
		{"cargo", "0.6.2", types.Advisory{VulnerableVersions: []string{">=0.6.3, <0.6.14", ">=1.0.0, <1.6.1"}}, false},
		{"cargo", "1.6.1", types.Advisory{VulnerableVersions: []string{">=0.6.3, <0.6.14", ">=1.0.0, <1.6.1"}}, false},
		// Newtonsoft.Json, CVE-2024-21907; NuGet's four-part versions.
		{"nuget", "12.0.3", types.Advisory{VulnerableVersions: []string{"<13.0.1"}}, true},
		{"nuget", "13.0.1", types.Advisory{VulnerableVersions: []string{"<13.0.1"}}, false},
		{"nuget", "13.0.0.1", types.Advisory{VulnerableVersions: []string{"<13.0.1"}}, true},
		// log4j-core, CVE-2021-44228 (Maven ordering: 2.4 < 2.12.2).
		{"maven", "2.14.1", types.Advisory{VulnerableVersions: []string{">=2.13.0, <2.15.0", "<2.3.1", ">=2.4, <2.12.2"}}, true},
		{"maven", "2.12.2", types.Advisory{VulnerableVersions: []string{">=2.13.0, <2.15.0", "<2.3.1", ">=2.4, <2.12.2"}}, false},
		{"maven", "2.0-beta9", types.Advisory{VulnerableVersions: []string{">=2.13.0, <2.15.0", "<2.3.1", ">=2.4, <2.12.2"}}, true},
		// requests, CVE-2023-32681 (PEP 440).
		{"python", "2.25.1", types.Advisory{VulnerableVersions: []string{">=2.3.0, <2.31.0"}}, true},
		{"python", "2.31.0", types.Advisory{VulnerableVersions: []string{">=2.3.0, <2.31.0"}}, false},
	}
	for _, tt := range tests {
		eco, ok := langComparers[tt.pkgType]
		if !ok {
			t.Fatalf("no ecosystem for %s", tt.pkgType)
		}
		got, err := isVulnerable(eco.match, tt.version, tt.adv)
		if err != nil {
			t.Errorf("%s %s: %v", tt.pkgType, tt.version, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s %s against %q: vulnerable = %v, want %v", tt.pkgType, tt.version, tt.adv.VulnerableVersions, got, tt.want)
		}
	}
}

func TestLanguageNameKeys(t *testing.T) {
	for _, tt := range []struct {
		pkgType, name string
		want          []string
	}{
		{"python", "Zope.Interface", []string{"zope.interface", "zope-interface"}},
		{"python", "typing_extensions", []string{"typing-extensions"}},
		{"nuget", "Newtonsoft.Json", []string{"newtonsoft.json"}},
		{"maven", "org.Example:Lib", []string{"org.example:lib"}},
		{"gem", "Rack", []string{"rack"}},
		{"npm", "@Babel/core", []string{"@Babel/core"}},
	} {
		eco := langComparers[tt.pkgType]
		key := tt.name
		if eco.normalize != nil {
			key = eco.normalize(key)
		}
		got := []string{key}
		if eco.alternate != nil && eco.alternate(tt.name) != key {
			got = append(got, eco.alternate(tt.name))
		}
		if len(got) != len(tt.want) || got[0] != tt.want[0] || len(got) > 1 && got[1] != tt.want[1] {
			t.Errorf("%s %s: keys %q, want %q", tt.pkgType, tt.name, got, tt.want)
		}
	}
}
