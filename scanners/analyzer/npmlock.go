package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// npmLock reads package-lock.json files (lockfileVersion 1, 2 and 3) of
// applications. It is opt-in (see Lockfiles): in an image the installed
// node_modules are the truth, and a lock file may list packages that were
// never installed there.
type npmLock struct{}

func (npmLock) Type() string { return "npm-lock" }
func (npmLock) Version() int { return 2 }

func (npmLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "package-lock.json" && !strings.Contains("/"+p, "/node_modules/")
}

func (npmLock) Analyze(_ context.Context, in Input) (*Result, error) {
	pkgs, err := parseNpmLock(in.Content)
	if err != nil {
		return nil, fmt.Errorf("npm lock %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location = Location{Layer: in.Layer, Path: in.Path}
	}
	return &Result{Packages: pkgs}, nil
}

type npmLockDep struct {
	Version      string                `json:"version"`
	Dev          bool                  `json:"dev"`
	Link         bool                  `json:"link"`
	Dependencies map[string]npmLockDep `json:"dependencies"`
}

// parseNpmLock lists the packages of a lock file, development-only ones
// ("dev": true) marked Dev: from "packages"
// (v2, v3) when present, else from the nested "dependencies" (v1).
func parseNpmLock(b []byte) ([]Package, error) {
	var lock struct {
		LockfileVersion int `json:"lockfileVersion"`
		Packages        map[string]struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Dev     bool   `json:"dev"`
			Link    bool   `json:"link"`
		} `json:"packages"`
		Dependencies map[string]npmLockDep `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, err
	}
	var pkgs []Package
	index := map[string]int{}
	add := func(name, version string, dev bool) {
		if name == "" || version == "" {
			return
		}
		if i, ok := index[name+"@"+version]; ok {
			pkgs[i].Dev = pkgs[i].Dev && dev
			return
		}
		index[name+"@"+version] = len(pkgs)
		pkgs = append(pkgs, Package{Type: TypeNpm, Name: name, Version: version, Dev: dev})
	}
	if len(lock.Packages) > 0 {
		keys := make([]string, 0, len(lock.Packages))
		for k := range lock.Packages {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := lock.Packages[k]
			i := strings.LastIndex(k, "node_modules/")
			if k == "" || i < 0 || p.Link {
				continue // the root project, a workspace or a symlink
			}
			name := p.Name
			if name == "" {
				name = k[i+len("node_modules/"):]
			}
			add(name, p.Version, p.Dev)
		}
		return pkgs, nil
	}
	var walk func(deps map[string]npmLockDep, depth int, dev bool)
	walk = func(deps map[string]npmLockDep, depth int, dev bool) {
		if depth > 64 {
			return
		}
		names := make([]string, 0, len(deps))
		for n := range deps {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			d := deps[n]
			if d.Link || strings.HasPrefix(d.Version, "file:") {
				continue
			}
			add(n, d.Version, dev || d.Dev)
			walk(d.Dependencies, depth+1, dev || d.Dev)
		}
	}
	walk(lock.Dependencies, 0, false)
	return pkgs, nil
}
