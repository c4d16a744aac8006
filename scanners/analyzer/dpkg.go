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
func (dpkgStatus) Version() int { return 2 }

func (dpkgStatus) Required(p string, _ fs.FileInfo) bool {
	if p == pathDpkgStatus {
		return true
	}
	return path.Dir(p) == pathDpkgStatusD && !strings.HasSuffix(p, ".md5sums")
}

func (dpkgStatus) Analyze(_ context.Context, in Input) (*Result, error) {
	pkgs, thirdParty, err := parseDpkgStatusParty(in.Content)
	if err != nil {
		return nil, fmt.Errorf("dpkg %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location = Location{Layer: in.Layer, Path: in.Path}
	}
	return &Result{Packages: pkgs, ThirdParty: thirdParty}, nil
}

// dpkgInstalled reports whether a package with this Status field has its
// files on disk and is to be reported. The field is "want flag state";
// only a package selected for removal (want deinstall or purge) or one
// whose files are gone (state not-installed or config-files) is dropped.
// Packages dpkg has unpacked but not (fully) configured ("install ok
// unpacked", "install ok half-configured", "install reinstreq
// half-installed", triggers pending) have their files on disk, and their
// flaws with them.
func dpkgInstalled(status string) bool {
	words := strings.Fields(status)
	if len(words) != 3 {
		return false
	}
	switch words[0] {
	case "deinstall", "purge":
		return false
	}
	switch words[2] {
	case "not-installed", "config-files":
		return false
	}
	return true
}

// distributionDomains are the mail domains of the Debian and Ubuntu
// projects (and their subdomains: lists.debian.org, tracker.debian.org,
// lists.alioth.debian.org, alioth-lists.debian.net, lists.ubuntu.com).
var distributionDomains = []string{"debian.org", "debian.net", "ubuntu.com", "canonical.com"}

// thirdPartyDeb reports whether a dpkg package comes from outside the
// distribution (NodeSource's nodejs, docker-ce, a vendor's agent): its
// Maintainer field, and the Original-Maintainer field Ubuntu keeps, name
// no address at a Debian or Ubuntu domain. A package with no Maintainer
// field is taken for the distribution's.
//
// The files of a third-party package do not hide the language packages in
// them: the distribution's advisories do not cover what a vendor bundled.
// The rule errs on the side of reporting: a Debian package maintained at
// a private address is taken for a third-party one, which can only make
// the language packages bundled in it (rare outside the Debian teams'
// packages) reported as well, never hide a finding.
func thirdPartyDeb(maintainer, original string) bool {
	if strings.TrimSpace(maintainer) == "" {
		return false
	}
	for _, field := range []string{maintainer, original} {
		if distributionAddress(field) {
			return false
		}
	}
	return true
}

// distributionAddress reports whether the mail address in a "Name <addr>"
// field is at one of distributionDomains.
func distributionAddress(field string) bool {
	i := strings.LastIndexByte(field, '<')
	j := strings.LastIndexByte(field, '>')
	if i < 0 || j < i {
		return false
	}
	_, domain, ok := strings.Cut(field[i+1:j], "@")
	if !ok {
		return false
	}
	domain = strings.ToLower(strings.TrimSpace(domain))
	for _, d := range distributionDomains {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// maxDpkgLine bounds one line of a status file.
const maxDpkgLine = 1 << 20

// parseDpkgStatus parses the paragraphs of a dpkg status file and returns
// the installed packages.
func parseDpkgStatus(b []byte) ([]Package, error) {
	pkgs, _, err := parseDpkgStatusParty(b)
	return pkgs, err
}

// parseDpkgStatusParty parses a dpkg status file and returns the installed
// packages and the names of those that come from outside the distribution
// (thirdPartyDeb).
func parseDpkgStatusParty(b []byte) ([]Package, []string, error) {
	var pkgs []Package
	var thirdParty []string
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
		if st, ok := fields["Status"]; ok && !dpkgInstalled(st) {
			return nil
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
		if thirdPartyDeb(fields["Maintainer"], fields["Original-Maintainer"]) {
			thirdParty = append(thirdParty, name)
		}
		return nil
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, nil, err
			}
			last = ""
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Continuation of a multi-line field (Description, Conffiles).
			if last == "" {
				return nil, nil, fmt.Errorf("continuation line %q outside a field", truncate(line))
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("line %q is not a field", truncate(line))
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return pkgs, thirdParty, nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
