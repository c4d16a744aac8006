package analyzer

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// nugetLock reads packages.lock.json of .NET projects (opt-in, see
// Lockfiles): the resolved version of every package of every target
// framework; "Project" entries are the solution's own projects.
type nugetLock struct{}

func (nugetLock) Type() string { return "nuget-lock" }
func (nugetLock) Version() int { return 1 }

func (nugetLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "packages.lock.json" && !inVendoredTree(p)
}

func (nugetLock) Analyze(_ context.Context, in Input) (*Result, error) {
	var lock struct {
		Version      int `json:"version"`
		Dependencies map[string]map[string]struct {
			Type     string `json:"type"`
			Resolved string `json:"resolved"`
		} `json:"dependencies"`
	}
	if err := decodeJSON(in.Content, &lock); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	if lock.Version < 1 || lock.Version > 2 {
		return nil, fmt.Errorf("%s: version %d: want 1 or 2", in.Path, lock.Version)
	}
	l := newPkgList(TypeNuGet, in)
	for _, fw := range sortedKeys(lock.Dependencies) {
		deps := lock.Dependencies[fw]
		for _, name := range sortedKeys(deps) {
			d := deps[name]
			if strings.EqualFold(d.Type, "Project") {
				continue
			}
			if d.Resolved == "" {
				return nil, fmt.Errorf("%s: dependencies.%s.%s: no resolved version", in.Path, fw, name)
			}
			if err := l.add(name, d.Resolved); err != nil {
				return nil, fmt.Errorf("%s: %w", in.Path, err)
			}
		}
	}
	return l.result(), nil
}

// dotnetDeps reads the *.deps.json file the .NET SDK writes beside a
// published application: its "libraries" of type "package" ("Name/1.2.3").
type dotnetDeps struct{}

func (dotnetDeps) Type() string { return "dotnet-deps" }
func (dotnetDeps) Version() int { return 1 }

func (dotnetDeps) Required(p string, _ fs.FileInfo) bool {
	return strings.HasSuffix(p, ".deps.json")
}

func (dotnetDeps) Analyze(_ context.Context, in Input) (*Result, error) {
	var deps struct {
		Libraries map[string]struct {
			Type string `json:"type"`
		} `json:"libraries"`
	}
	if err := decodeJSON(in.Content, &deps); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	l := newPkgList(TypeNuGet, in)
	for _, key := range sortedKeys(deps.Libraries) {
		if deps.Libraries[key].Type != "package" {
			continue
		}
		name, version, ok := strings.Cut(key, "/")
		if !ok || name == "" || version == "" {
			return nil, fmt.Errorf("%s: libraries: key %q: want Name/Version", in.Path, key)
		}
		if err := l.add(name, version); err != nil {
			return nil, fmt.Errorf("%s: %w", in.Path, err)
		}
	}
	return l.result(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
