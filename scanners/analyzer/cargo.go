package analyzer

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/BurntSushi/toml"
)

// cargoLock reads Cargo.lock of Rust applications (opt-in, see Lockfiles):
// every package from a registry or git source; packages without a source
// are the workspace's own crates.
type cargoLock struct{}

func (cargoLock) Type() string { return "cargo-lock" }
func (cargoLock) Version() int { return 1 }

func (cargoLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "Cargo.lock" && !inVendoredTree(p)
}

func (cargoLock) Analyze(_ context.Context, in Input) (*Result, error) {
	res, err := parseCargoLock(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

func parseCargoLock(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	var lock struct {
		Package []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
			Source  string `toml:"source"`
		} `toml:"package"`
	}
	if _, err := toml.Decode(string(in.Content), &lock); err != nil {
		return nil, tomlError(err)
	}
	l := newPkgList(TypeCargo, in)
	for i, p := range lock.Package {
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("[[package]] %d: no name or version", i+1)
		}
		if p.Source == "" {
			continue
		}
		if err := l.add(p.Name, p.Version); err != nil {
			return nil, err
		}
	}
	return l.result(), nil
}

// cargoAuditable reads the dependency list that cargo-auditable embeds in
// Rust executables: the ELF section ".dep-v0", zlib-compressed JSON
// ({"packages": [{"name", "version", "source", "kind", "root"}]}). The
// root crate, local crates and build-time dependencies (not linked in)
// are left out. Executables of other formats are not read.
type cargoAuditable struct{}

func (cargoAuditable) Type() string { return "cargo-auditable" }
func (cargoAuditable) Version() int { return 1 }

func (cargoAuditable) Required(_ string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 && info.Size() > 4
}

// maxAuditableJSON bounds the decompressed dependency list.
const maxAuditableJSON = 16 << 20

func (cargoAuditable) Analyze(_ context.Context, in Input) (res *Result, err error) {
	if !bytes.HasPrefix(in.Content, []byte("\x7fELF")) {
		return nil, ErrNotApplicable
	}
	defer func() {
		// debug/elf reads hostile headers; a bug there must not end the scan.
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("%s: ELF: %v", in.Path, r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(in.Content))
	if err != nil {
		return nil, ErrNotApplicable
	}
	sec := f.Section(".dep-v0")
	if sec == nil {
		return nil, ErrNotApplicable
	}
	raw, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: section .dep-v0: %w", in.Path, err)
	}
	pkgs, err := parseAuditableDeps(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: section .dep-v0: %w", in.Path, err)
	}
	l := newPkgList(TypeCargo, in)
	for _, p := range pkgs {
		if err := l.add(p[0], p[1]); err != nil {
			return nil, fmt.Errorf("%s: %w", in.Path, err)
		}
	}
	return l.result(), nil
}

// parseAuditableDeps inflates and decodes a .dep-v0 section and returns the
// name and version of each linked dependency.
func parseAuditableDeps(raw []byte) ([][2]string, error) {
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	defer zr.Close()
	js, err := io.ReadAll(io.LimitReader(zr, maxAuditableJSON+1))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if len(js) > maxAuditableJSON {
		return nil, fmt.Errorf("dependency list larger than %d MiB", maxAuditableJSON>>20)
	}
	var doc struct {
		Packages []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Source  string `json:"source"`
			Kind    string `json:"kind"`
			Root    bool   `json:"root"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, jsonError(js, err)
	}
	var out [][2]string
	for i, p := range doc.Packages {
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("packages[%d]: no name or version", i)
		}
		if p.Root || p.Source == "local" || p.Kind == "build" {
			continue
		}
		out = append(out, [2]string{p.Name, p.Version})
	}
	return out, nil
}
