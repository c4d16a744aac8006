package analyzer

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// TypeGoMod is a Go module required by an application's go.mod.
const TypeGoMod = "gomod"

// goMod reads go.mod files of Go applications (opt-in, see Lockfiles):
// every required module (direct and, since Go 1.17, indirect) with the
// replace directives applied; a module replaced by a local directory has
// no version to match and is left out. Vendored copies
// (vendor/.../go.mod) and the module cache are not read.
type goMod struct{}

func (goMod) Type() string { return TypeGoMod }
func (goMod) Version() int { return 1 }

func (goMod) Required(p string, _ fs.FileInfo) bool {
	if path.Base(p) != "go.mod" {
		return false
	}
	s := "/" + p
	return !strings.Contains(s, "/vendor/") && !strings.Contains(s, "/pkg/mod/") && !strings.Contains(s, "/testdata/")
}

func (goMod) Analyze(_ context.Context, in Input) (*Result, error) {
	f, err := modfile.Parse(in.Path, in.Content, nil)
	if err != nil {
		return nil, fmt.Errorf("go.mod %s: %w", in.Path, err)
	}
	replaced := map[module.Version]module.Version{}
	replacedAll := map[string]module.Version{}
	for _, r := range f.Replace {
		if r.Old.Version == "" {
			replacedAll[r.Old.Path] = r.New
		} else {
			replaced[r.Old] = r.New
		}
	}
	var pkgs []Package
	for _, r := range f.Require {
		m := r.Mod
		if n, ok := replaced[m]; ok {
			m = n
		} else if n, ok := replacedAll[m.Path]; ok {
			m = n
		}
		if m.Version == "" || modfile.IsDirectoryPath(m.Path) {
			continue
		}
		pkgs = append(pkgs, Package{Type: TypeGoMod, Name: m.Path, Version: m.Version, Location: Location{Layer: in.Layer, Path: in.Path}})
	}
	return &Result{Packages: pkgs}, nil
}
