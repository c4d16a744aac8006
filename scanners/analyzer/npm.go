package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// npmPackage reads the package.json of every package installed under a
// node_modules directory.
type npmPackage struct{}

func (npmPackage) Type() string { return TypeNpm }
func (npmPackage) Version() int { return 1 }

func (npmPackage) Required(p string, _ fs.FileInfo) bool {
	if path.Base(p) != "package.json" {
		return false
	}
	dir := path.Dir(p)
	parent := path.Dir(dir)
	if strings.HasPrefix(path.Base(parent), "@") {
		parent = path.Dir(parent)
	}
	return path.Base(parent) == "node_modules"
}

func (npmPackage) Analyze(_ context.Context, in Input) (*Result, error) {
	var pj struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(in.Content, &pj); err != nil {
		return nil, fmt.Errorf("npm %s: %w", in.Path, err)
	}
	if pj.Name == "" || pj.Version == "" {
		// A workspace or test fixture, not an installed package.
		return nil, ErrNotApplicable
	}
	return &Result{Packages: []Package{{
		Type: TypeNpm, Name: pj.Name, Version: pj.Version,
		Location: Location{Layer: in.Layer, Path: in.Path},
	}}}, nil
}
