package analyzer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Package types of the language ecosystems read from lock files, manifests
// and installed metadata (besides TypeNpm, TypePython, TypeJar, TypeGoMod).
const (
	// TypeGem is a Ruby gem (Gemfile.lock, specifications/*.gemspec).
	TypeGem = "gem"
	// TypeComposer is a PHP Composer package (composer.lock,
	// vendor/composer/installed.json).
	TypeComposer = "composer"
	// TypeCargo is a Rust crate (Cargo.lock, cargo-auditable binaries).
	TypeCargo = "cargo"
	// TypeNuGet is a .NET NuGet package (packages.lock.json, *.deps.json).
	TypeNuGet = "nuget"
	// TypeMaven is a Maven artifact ("group:artifact") that a build file
	// declares (pom.xml, gradle.lockfile); TypeJar is one found in an archive.
	TypeMaven = "maven"
)

// maxManifestSize bounds every lock file and manifest the language parsers
// read: the largest real lock files are a few MiB.
const maxManifestSize = 32 << 20

// maxManifestEntries bounds the packages one file may list.
const maxManifestEntries = 200_000

// errTooLarge is returned for a lock file or manifest above maxManifestSize.
var errTooLarge = fmt.Errorf("larger than %d MiB", maxManifestSize>>20)

// checkManifestSize rejects content above maxManifestSize.
func checkManifestSize(b []byte) error {
	if len(b) > maxManifestSize {
		return errTooLarge
	}
	return nil
}

// lineOf returns the 1-based line of byte offset off in b.
func lineOf(b []byte, off int64) int {
	if off < 0 {
		return 1
	}
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	return bytes.Count(b[:off], []byte("\n")) + 1
}

// jsonError names the line (and field) where encoding/json gave up on b.
func jsonError(b []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: %w", lineOf(b, se.Offset), err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("line %d: field %q: want %s, got JSON %s", lineOf(b, te.Offset), te.Field, te.Type, te.Value)
	}
	return err
}

// decodeJSON decodes a JSON document, bounded by maxManifestSize, and says
// where it is wrong.
func decodeJSON(b []byte, v any) error {
	if err := checkManifestSize(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return jsonError(b, err)
	}
	return nil
}

// pkgList collects the packages of one file, once each, bounded by
// maxManifestEntries.
type pkgList struct {
	typ string
	loc Location
	// seen holds the index in pkgs of each name@version listed.
	seen map[string]int
	pkgs []Package
}

func newPkgList(typ string, in Input) *pkgList {
	return newPkgListAt(typ, Location{Layer: in.Layer, Path: in.Path})
}

func newPkgListAt(typ string, loc Location) *pkgList {
	return &pkgList{typ: typ, loc: loc, seen: map[string]int{}}
}

// add lists name@version unless one is empty or it is listed already.
func (l *pkgList) add(name, version string) error {
	name, version = strings.TrimSpace(name), strings.TrimSpace(version)
	if name == "" || version == "" {
		return nil
	}
	key := name + "@" + version
	if _, ok := l.seen[key]; ok {
		return nil
	}
	if len(l.pkgs) >= maxManifestEntries {
		return fmt.Errorf("more than %d packages", maxManifestEntries)
	}
	l.seen[key] = len(l.pkgs)
	l.pkgs = append(l.pkgs, Package{Type: l.typ, Name: name, Version: version, Location: l.loc})
	return nil
}

// addDev lists name@version as add does, marked Dev when dev is true; a
// package listed both ways is kept as a production one. A repeat finds
// the package by its index, so that a file listing every package twice
// (development first) costs no more than twice the packages, where a
// search of the list made it quadratic.
func (l *pkgList) addDev(name, version string, dev bool) error {
	key := strings.TrimSpace(name) + "@" + strings.TrimSpace(version)
	if i, ok := l.seen[key]; ok {
		if !dev {
			l.pkgs[i].Dev = false
		}
		return nil
	}
	n := len(l.pkgs)
	if err := l.add(name, version); err != nil {
		return err
	}
	if len(l.pkgs) > n {
		l.pkgs[n].Dev = dev
	}
	return nil
}

// result returns the packages found, sorted; nil packages when none.
func (l *pkgList) result() *Result {
	SortPackages(l.pkgs)
	return &Result{Packages: l.pkgs}
}

// inVendoredTree reports whether p lies in a directory of installed
// dependencies or test material, whose lock files describe someone else's
// project (a dependency's own lock file is not what the application runs).
func inVendoredTree(p string) bool {
	s := "/" + path.Dir(p) + "/"
	for _, d := range []string{"/node_modules/", "/vendor/", "/testdata/", "/site-packages/", "/dist-packages/", "/.cargo/registry/", "/gems/"} {
		if strings.Contains(s, d) {
			return true
		}
	}
	return false
}
