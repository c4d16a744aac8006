package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
)

// apkRepositories reads /etc/apk/repositories, the package repositories an
// Alpine system installs from. An image whose /etc/alpine-release is older
// than its repositories (v3.19 packages on a 3.18 base, or edge) has the
// repositories' packages, so their advisories are the ones to match: the
// release found here becomes OS.Repository, as Trivy's apk-repo analyzer
// does.
type apkRepositories struct{}

const pathAPKRepositories = "etc/apk/repositories"

// apkRepositoryFamily marks the result: it only adds the repositories'
// release to an OS that os-release says is Alpine.
const apkRepositoryFamily = "apk-repositories"

// apkRepoURL finds the distribution and release in a repository line
// ("https://dl-cdn.alpinelinux.org/alpine/v3.19/main", also after an
// "@tag"): the first path segment and the next one, without its "v".
var apkRepoURL = regexp.MustCompile(`(?:https?|ftp)://[0-9A-Za-z.-]+(?::[0-9]+)?/([A-Za-z]+)/v?([0-9A-Za-z_.-]+)/`)

func (apkRepositories) Type() string { return "apk-repositories" }
func (apkRepositories) Version() int { return 1 }

func (apkRepositories) Required(path string, _ fs.FileInfo) bool {
	return path == pathAPKRepositories
}

// Analyze returns the newest release the repositories name ("edge" above
// every numbered one); repositories of another distribution (postmarketOS)
// are not Alpine's advisories, and a file mixing distributions is an error.
func (apkRepositories) Analyze(_ context.Context, in Input) (*Result, error) {
	var family, release string
	sc := bufio.NewScanner(bytes.NewReader(in.Content))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		m := apkRepoURL.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if family != "" && m[1] != family {
			return nil, fmt.Errorf("%s mixes distributions: %s and %s", in.Path, family, m[1])
		}
		family = m[1]
		if newerAlpineRelease(m[2], release) {
			release = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	if family != "alpine" || release == "" {
		return nil, ErrNotApplicable
	}
	return &Result{OS: &OS{Family: apkRepositoryFamily, Name: release}}, nil
}

// newerAlpineRelease reports whether release a ("3.19", "edge") is newer
// than b ("" is older than any). A release that is neither numbered nor
// edge ("latest-stable") names no advisory bucket and is never newer.
func newerAlpineRelease(a, b string) bool {
	switch {
	case a == "edge":
		return b != "edge"
	case b == "edge":
		return false
	}
	av, ok := releaseNumbers(a)
	if !ok {
		return false
	}
	bv, ok := releaseNumbers(b)
	if !ok {
		return true
	}
	for i := 0; i < len(av) || i < len(bv); i++ {
		var x, y int
		if i < len(av) {
			x = av[i]
		}
		if i < len(bv) {
			y = bv[i]
		}
		if x != y {
			return x > y
		}
	}
	return false
}

// releaseNumbers parses "3.19" or "3.19.1" into its numbers.
func releaseNumbers(s string) ([]int, bool) {
	if s == "" {
		return nil, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return nil, false
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 1<<20 {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}
