package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"path"
	"strings"
)

// dpkgFiles reads the file lists of installed Debian packages: the
// var/lib/dpkg/info/*.list files of a dpkg database, and the
// var/lib/dpkg/status.d/*.md5sums files that distroless images carry
// instead. Language packages found in files an OS package owns (Debian's
// python3-yaml, a Go program shipped as a .deb) are the OS package's
// business and are dropped from the inventory, as trivy does, so that one
// flaw is not reported twice, unless the package comes from outside the
// distribution (thirdPartyDeb).
type dpkgFiles struct{}

const pathDpkgInfo = "var/lib/dpkg/info"

func (dpkgFiles) Type() string { return "dpkg-files" }
func (dpkgFiles) Version() int { return 2 }

func (dpkgFiles) Required(p string, _ fs.FileInfo) bool {
	switch path.Dir(p) {
	case pathDpkgInfo:
		return strings.HasSuffix(p, ".list")
	case pathDpkgStatusD:
		return strings.HasSuffix(p, ".md5sums")
	}
	return false
}

func (dpkgFiles) Analyze(_ context.Context, in Input) (*Result, error) {
	md5sums := strings.HasSuffix(in.Path, ".md5sums")
	var owned []string
	sc := bufio.NewScanner(bytes.NewReader(in.Content))
	sc.Buffer(make([]byte, 0, 64<<10), maxDpkgLine)
	for sc.Scan() {
		line := sc.Text()
		if md5sums {
			// "<md5>  <path relative to />"
			_, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok {
				continue
			}
			line = rest
		}
		if p := ownedPath(line); p != "" {
			owned = append(owned, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	owner := path.Base(in.Path)
	owner = strings.TrimSuffix(strings.TrimSuffix(owner, ".list"), ".md5sums")
	owner, _, _ = strings.Cut(owner, ":") // "libc6:amd64.list"
	return &Result{OwnedFiles: owned, Owner: owner}, nil
}

// ownedPath turns an absolute path from a package manager's file list into
// the walk's relative form, or "" for the root and blank lines.
func ownedPath(line string) string {
	p := path.Clean("/" + strings.TrimSpace(line))
	if p == "/" {
		return ""
	}
	return p[1:]
}

// languageTypes are the package types dropped when an OS package owns the
// file they were found in.
var languageTypes = map[string]bool{
	TypeGoBinary: true,
	TypeGoMod:    true,
	TypeNpm:      true,
	TypePython:   true,
	TypeJar:      true,
	TypeGem:      true,
	TypeComposer: true,
	TypeCargo:    true,
	TypeNuGet:    true,
	TypeMaven:    true,
}

// outerFile returns the file a package was found in, without the path
// inside a Java archive ("app.jar/BOOT-INF/lib/x.jar" -> "app.jar").
func outerFile(p string) string {
	for _, ext := range []string{".jar/", ".war/", ".ear/", ".par/"} {
		if i := strings.Index(p, ext); i >= 0 {
			return p[:i+len(ext)-1]
		}
	}
	return p
}
