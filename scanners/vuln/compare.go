package vuln

import (
	"fmt"
	"strings"

	pep440 "github.com/aquasecurity/go-pep440-version"
	"github.com/aquasecurity/go-version/pkg/semver"
	apkversion "github.com/knqyf263/go-apk-version"
	debversion "github.com/knqyf263/go-deb-version"
	rpmversion "github.com/knqyf263/go-rpm-version"
	mvn "github.com/masahiro331/go-mvn-version"
)

// compareFunc compares two versions of one ecosystem: <0, 0 or >0.
type compareFunc func(a, b string) (int, error)

func compareDeb(a, b string) (int, error) {
	va, err := debversion.NewVersion(a)
	if err != nil {
		return 0, fmt.Errorf("deb version %q: %w", a, err)
	}
	vb, err := debversion.NewVersion(b)
	if err != nil {
		return 0, fmt.Errorf("deb version %q: %w", b, err)
	}
	return va.Compare(vb), nil
}

func compareAPK(a, b string) (int, error) {
	va, err := apkversion.NewVersion(a)
	if err != nil {
		return 0, fmt.Errorf("apk version %q: %w", a, err)
	}
	vb, err := apkversion.NewVersion(b)
	if err != nil {
		return 0, fmt.Errorf("apk version %q: %w", b, err)
	}
	return va.Compare(vb), nil
}

func compareRPM(a, b string) (int, error) {
	return rpmversion.NewVersion(a).Compare(rpmversion.NewVersion(b)), nil
}

// osComparers maps an OS family to its package version rules.
var osComparers = map[string]compareFunc{
	"debian":     compareDeb,
	"ubuntu":     compareDeb,
	"alpine":     compareAPK,
	"wolfi":      compareAPK,
	"chainguard": compareAPK,
	"redhat":     compareRPM,
	"centos":     compareRPM,
	"rocky":      compareRPM,
	"alma":       compareRPM,
	"amazon":     compareRPM,
	"oracle":     compareRPM,
	"fedora":     compareRPM,
}

// matchFunc reports whether version satisfies any of the constraints (each
// a comma-separated AND list such as ">=1.0.0, <1.2.3").
type matchFunc func(version string, constraints []string) (bool, error)

func matchSemver(version string, constraints []string) (bool, error) {
	v, err := semver.Parse(strings.TrimPrefix(version, "v"))
	if err != nil {
		return false, fmt.Errorf("semver %q: %w", version, err)
	}
	for _, c := range constraints {
		cs, err := semver.NewConstraints(c, semver.WithPreRelease(true))
		if err != nil {
			return false, fmt.Errorf("semver constraint %q: %w", c, err)
		}
		if cs.Check(v) {
			return true, nil
		}
	}
	return false, nil
}

func matchPEP440(version string, constraints []string) (bool, error) {
	v, err := pep440.Parse(version)
	if err != nil {
		return false, fmt.Errorf("PEP 440 version %q: %w", version, err)
	}
	for _, c := range constraints {
		ss, err := pep440.NewSpecifiers(c, pep440.WithPreRelease(true))
		if err != nil {
			return false, fmt.Errorf("PEP 440 specifier %q: %w", c, err)
		}
		if ss.Check(v) {
			return true, nil
		}
	}
	return false, nil
}

func matchMaven(version string, constraints []string) (bool, error) {
	v, err := mvn.NewVersion(version)
	if err != nil {
		return false, fmt.Errorf("maven version %q: %w", version, err)
	}
	for _, c := range constraints {
		cs, err := mvn.NewConstraints(c)
		if err != nil {
			return false, fmt.Errorf("maven constraint %q: %w", c, err)
		}
		if cs.Check(v) {
			return true, nil
		}
	}
	return false, nil
}

// langEcosystem is how one language package type is matched.
type langEcosystem struct {
	// prefix selects the DB buckets ("go::" matches "go::The Go Vulnerability Database").
	prefix string
	match  matchFunc
	// normalize turns a package name into the DB's key; nil keeps it.
	normalize func(string) string
	// alternate is a second key to look up when it differs (Python: the
	// PEP 503 form and trivy-db's own).
	alternate func(string) string
}

// normalizePython applies PEP 503: lower case, runs of "-", "_", "." become "-".
func normalizePython(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r == '-' || r == '_' || r == '.' {
			if !dash {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		dash = false
		b.WriteRune(r)
	}
	return b.String()
}

// langComparers maps an analyzer package type to its ecosystem.
var langComparers = map[string]langEcosystem{
	"gobinary": {prefix: "go::", match: matchSemver},
	"gomod":    {prefix: "go::", match: matchSemver},
	"npm":      {prefix: "npm::", match: matchSemver},
	"python":   {prefix: "pip::", match: matchPEP440, normalize: normalizePipTrivy, alternate: normalizePython},
	"jar":      {prefix: "maven::", match: matchMaven, normalize: normalizeLower},
	"maven":    {prefix: "maven::", match: matchMaven, normalize: normalizeLower},
	"gem":      {prefix: "rubygems::", match: matchGem, normalize: normalizeLower},
	"composer": {prefix: "composer::", match: matchGeneric, normalize: normalizeLower},
	"cargo":    {prefix: "cargo::", match: matchGeneric, normalize: normalizeLower},
	"nuget":    {prefix: "nuget::", match: matchGeneric, normalize: normalizeLower},
}
