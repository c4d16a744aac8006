package analyzer

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io/fs"
	"strings"
)

// goBinary reads the build information Go embeds in every binary: the main
// module's dependencies and the Go toolchain (reported as package "stdlib").
type goBinary struct{}

func (goBinary) Type() string { return TypeGoBinary }
func (goBinary) Version() int { return 2 }

func (goBinary) Required(_ string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 && info.Size() > 4
}

// executableMagic are the first bytes of the formats debug/buildinfo reads.
var executableMagic = [][]byte{
	[]byte("\x7fELF"),
	[]byte("MZ"),
	{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, // Mach-O
	{0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe},
}

func (goBinary) Analyze(_ context.Context, in Input) (*Result, error) {
	isExe := false
	for _, m := range executableMagic {
		if bytes.HasPrefix(in.Content, m) {
			isExe = true
			break
		}
	}
	if !isExe {
		return nil, ErrNotApplicable
	}
	bi, err := buildinfo.Read(bytes.NewReader(in.Content))
	if err != nil {
		// Not a Go binary, or one built without module support.
		return nil, ErrNotApplicable
	}
	loc := Location{Layer: in.Layer, Path: in.Path}
	var pkgs []Package
	if v := goToolchainVersion(bi.GoVersion); v != "" {
		pkgs = append(pkgs, Package{Type: TypeGoBinary, Name: "stdlib", Version: "v" + v, Location: loc})
	}
	if bi.Main.Path != "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		pkgs = append(pkgs, Package{Type: TypeGoBinary, Name: bi.Main.Path, Version: bi.Main.Version, Location: loc})
	}
	for _, dep := range bi.Deps {
		m := dep
		if dep.Replace != nil {
			m = dep.Replace
		}
		if m.Path == "" || m.Version == "" || m.Version == "(devel)" {
			continue
		}
		pkgs = append(pkgs, Package{Type: TypeGoBinary, Name: m.Path, Version: m.Version, Location: loc})
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("go binary %s: build info names no module", in.Path)
	}
	return &Result{Packages: pkgs}, nil
}

// goToolchainVersion returns the release of the toolchain that built a
// binary ("1.26.0") from its recorded version, without the experiment
// suffix: "go1.22.1 X:loopvar" (Go < 1.26) and "go1.26.0-X:jsonv2"
// (Go >= 1.26). It returns "" for a devel toolchain or an empty version.
func goToolchainVersion(s string) string {
	v, ok := strings.CutPrefix(s, "go")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	v, _, _ = strings.Cut(v, "-X:")
	if v == "" || strings.HasPrefix(v, "devel") {
		return ""
	}
	return v
}
