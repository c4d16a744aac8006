package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// dpkgStatus reads dpkg's database: var/lib/dpkg/status, and the one file
// per package in var/lib/dpkg/status.d/ that distroless images carry.
type dpkgStatus struct{}

const (
	pathDpkgStatus  = "var/lib/dpkg/status"
	pathDpkgStatusD = "var/lib/dpkg/status.d"
)

func (dpkgStatus) Type() string { return TypeDpkg }
func (dpkgStatus) Version() int { return 1 }

func (dpkgStatus) Required(p string, _ fs.FileInfo) bool {
	if p == pathDpkgStatus {
		return true
	}
	return path.Dir(p) == pathDpkgStatusD && !strings.HasSuffix(p, ".md5sums")
}

func (dpkgStatus) Analyze(_ context.Context, in Input) (*Result, error) {
	pkgs, err := parseDpkgStatus(in.Content)
	if err != nil {
		return nil, fmt.Errorf("dpkg %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location = Location{Layer: in.Layer, Path: in.Path}
	}
	return &Result{Packages: pkgs}, nil
}

// maxDpkgLine bounds one line of a status file.
const maxDpkgLine = 1 << 20

// parseDpkgStatus parses the paragraphs of a dpkg status file and returns
// the installed packages.
func parseDpkgStatus(b []byte) ([]Package, error) {
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxDpkgLine)
	fields := map[string]string{}
	var last string
	flush := func() error {
		defer clear(fields)
		name := fields["Package"]
		if name == "" {
			if len(fields) > 0 && fields["Version"] != "" {
				return fmt.Errorf("paragraph with version %q has no Package field", fields["Version"])
			}
			return nil
		}
		if st, ok := fields["Status"]; ok {
			words := strings.Fields(st)
			if len(words) != 3 || words[2] != "installed" {
				return nil
			}
		}
		ver := fields["Version"]
		if ver == "" {
			return fmt.Errorf("package %s has no Version field", name)
		}
		p := Package{Type: TypeDpkg, Name: name, Version: ver, SrcName: name, SrcVersion: ver}
		if src := fields["Source"]; src != "" {
			srcName, srcVer, ok := strings.Cut(src, " ")
			p.SrcName = srcName
			if ok {
				srcVer = strings.TrimSpace(srcVer)
				if !strings.HasPrefix(srcVer, "(") || !strings.HasSuffix(srcVer, ")") {
					return fmt.Errorf("package %s: malformed Source field %q", name, src)
				}
				p.SrcVersion = strings.TrimSpace(srcVer[1 : len(srcVer)-1])
			}
		}
		pkgs = append(pkgs, p)
		return nil
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Continuation of a multi-line field (Description, Conffiles).
			if last == "" {
				return nil, fmt.Errorf("continuation line %q outside a field", truncate(line))
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %q is not a field", truncate(line))
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
