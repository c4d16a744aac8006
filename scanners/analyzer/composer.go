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
// Lockfiles): its "packages"; "packages-dev" are for development only.
type composerLock struct{}

func (composerLock) Type() string { return "composer-lock" }
func (composerLock) Version() int { return 1 }

func (composerLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "composer.lock" && !inVendoredTree(p)
}

type composerPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (composerLock) Analyze(_ context.Context, in Input) (*Result, error) {
	var lock struct {
		Packages []composerPackage `json:"packages"`
	}
	if err := decodeJSON(in.Content, &lock); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	res, err := composerPackages(in, lock.Packages)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

// composerPackages lists packages with a release version; a branch
// ("dev-main") names no release an advisory could list.
func composerPackages(in Input, pkgs []composerPackage) (*Result, error) {
	l := newPkgList(TypeComposer, in)
	for i, p := range pkgs {
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("packages[%d]: no name or version", i)
		}
		if strings.HasPrefix(p.Version, "dev-") {
			continue
		}
		if err := l.add(p.Name, p.Version); err != nil {
			return nil, err
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
	res, err := composerPackages(in, pkgs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}
