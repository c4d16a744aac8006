package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// composerLock reads composer.lock of PHP applications (opt-in, see
// Lockfiles): its "packages", and "packages-dev" marked Dev (development
// only).
type composerLock struct{}

func (composerLock) Type() string { return "composer-lock" }
func (composerLock) Version() int { return 2 }

func (composerLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "composer.lock" && !inVendoredTree(p)
}

type composerPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (composerLock) Analyze(_ context.Context, in Input) (*Result, error) {
	var lock struct {
		Packages    []composerPackage `json:"packages"`
		PackagesDev []composerPackage `json:"packages-dev"`
	}
	if err := decodeJSON(in.Content, &lock); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	res, err := composerPackages(in, lock.Packages, lock.PackagesDev)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

// composerPackages lists packages with a release version; a branch
// ("dev-main") names no release an advisory could list.
// Those of devPkgs are marked Dev.
func composerPackages(in Input, pkgs, devPkgs []composerPackage) (*Result, error) {
	l := newPkgList(TypeComposer, in)
	for _, sec := range []struct {
		field string
		pkgs  []composerPackage
		dev   bool
	}{{"packages", pkgs, false}, {"packages-dev", devPkgs, true}} {
		for i, p := range sec.pkgs {
			if p.Name == "" || p.Version == "" {
				return nil, fmt.Errorf("%s[%d]: no name or version", sec.field, i)
			}
			if strings.HasPrefix(p.Version, "dev-") {
				continue
			}
			if err := l.addDev(p.Name, p.Version, sec.dev); err != nil {
				return nil, err
			}
		}
	}
	return l.result(), nil
}

// composerInstalled reads vendor/composer/installed.json, Composer's record
// of the packages installed in an application's vendor directory: a list
// (Composer 1) or {"packages": [...]} (Composer 2). Every installed
// package is reported, dev ones too: they are on disk.
type composerInstalled struct{}

func (composerInstalled) Type() string { return "composer-installed" }
func (composerInstalled) Version() int { return 1 }

func (composerInstalled) Required(p string, _ fs.FileInfo) bool {
	return strings.HasSuffix("/"+p, "/vendor/composer/installed.json")
}

func (composerInstalled) Analyze(_ context.Context, in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	var pkgs []composerPackage
	var v2 struct {
		Packages []composerPackage `json:"packages"`
	}
	trimmed := strings.TrimSpace(string(in.Content[:min(len(in.Content), 64)]))
	var err error
	if strings.HasPrefix(trimmed, "[") {
		err = json.Unmarshal(in.Content, &pkgs)
	} else {
		err = json.Unmarshal(in.Content, &v2)
		pkgs = v2.Packages
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, jsonError(in.Content, err))
	}
	res, err := composerPackages(in, pkgs, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}
