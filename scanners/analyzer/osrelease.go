package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
)

// osRelease reads /etc/os-release (or /usr/lib/os-release) and, for
// Debian, /etc/debian_version, which carries the point release.
type osRelease struct{}

const (
	pathOSRelease    = "etc/os-release"
	pathUsrOSRelease = "usr/lib/os-release"
	pathDebVersion   = "etc/debian_version"
	pathAlpine       = "etc/alpine-release"
)

// osPriority ranks the files an OS can be read from: a higher one wins.
func osPriority(path string) int {
	switch path {
	case pathOSRelease:
		return 3
	case pathUsrOSRelease:
		return 2
	case pathAlpine:
		return 1
	}
	return 0
}

func (osRelease) Type() string { return "os-release" }
func (osRelease) Version() int { return 1 }

func (osRelease) Required(path string, _ fs.FileInfo) bool {
	switch path {
	case pathOSRelease, pathUsrOSRelease, pathDebVersion, pathAlpine:
		return true
	}
	return false
}

// familyAliases maps os-release IDs to the family names the vulnerability DB uses.
var familyAliases = map[string]string{
	"rhel":          "redhat",
	"almalinux":     "alma",
	"amzn":          "amazon",
	"ol":            "oracle",
	"opensuse-leap": "opensuse.leap",
	"sles":          "suse linux enterprise server",
}

func (osRelease) Analyze(_ context.Context, in Input) (*Result, error) {
	switch in.Path {
	case pathDebVersion:
		v := strings.TrimSpace(string(in.Content))
		if v == "" || v[0] < '0' || v[0] > '9' {
			// Ubuntu and testing write a codename here ("bookworm/sid").
			return nil, ErrNotApplicable
		}
		return &Result{OS: &OS{Family: debianPointRelease, Name: v}}, nil
	case pathAlpine:
		v := strings.TrimSpace(string(in.Content))
		if v == "" {
			return nil, fmt.Errorf("%s is empty", in.Path)
		}
		return &Result{OS: &OS{Family: "alpine", Name: v}}, nil
	}
	fields := parseOSRelease(in.Content)
	id := fields["ID"]
	if id == "" {
		return nil, fmt.Errorf("%s has no ID", in.Path)
	}
	if alias, ok := familyAliases[id]; ok {
		id = alias
	}
	ver := fields["VERSION_ID"]
	if ver == "" && id == "debian" {
		// Debian testing and sid have no VERSION_ID.
		ver = fields["VERSION_CODENAME"]
	}
	return &Result{OS: &OS{Family: id, Name: ver}}, nil
}

// debianPointRelease marks the OS read from debian_version: it only refines
// the version of an OS that os-release says is Debian.
const debianPointRelease = "debian-point-release"

// parseOSRelease parses KEY=value lines, with optional quotes.
func parseOSRelease(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}
