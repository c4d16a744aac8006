package vuln

import (
	"fmt"
	"strings"

	gem "github.com/aquasecurity/go-gem-version"
	"github.com/aquasecurity/go-version/pkg/version"
)

// matchGem applies RubyGems' version rules (2.2.3.1 > 2.2.3, 1.0.a <
// 1.0), as trivy does for bundler and gemspec packages.
func matchGem(v string, constraints []string) (bool, error) {
	ver, err := gem.NewVersion(v)
	if err != nil {
		return false, fmt.Errorf("RubyGems version %q: %w", v, err)
	}
	for _, c := range constraints {
		cs, err := gem.NewConstraints(c)
		if err != nil {
			return false, fmt.Errorf("RubyGems constraint %q: %w", c, err)
		}
		if cs.Check(ver) {
			return true, nil
		}
	}
	return false, nil
}

// matchGeneric applies the dotted-number rules trivy uses for Cargo,
// Composer and NuGet (any number of parts, an optional "v", SemVer-style
// pre-releases).
func matchGeneric(v string, constraints []string) (bool, error) {
	ver, err := version.Parse(v)
	if err != nil {
		return false, fmt.Errorf("version %q: %w", v, err)
	}
	for _, c := range constraints {
		cs, err := version.NewConstraints(c)
		if err != nil {
			return false, fmt.Errorf("version constraint %q: %w", c, err)
		}
		if cs.Check(ver) {
			return true, nil
		}
	}
	return false, nil
}

// normalizeLower is trivy-db's key for the ecosystems whose names are
// case-insensitive (Maven, RubyGems, Composer, Cargo, NuGet).
func normalizeLower(name string) string { return strings.ToLower(name) }

// normalizePipTrivy is trivy-db's key for a Python package: lower case,
// "_" becomes "-" (dots are kept, unlike PEP 503's normal form).
func normalizePipTrivy(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}
