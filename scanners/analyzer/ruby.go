package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// gemLock reads Gemfile.lock of Ruby applications (opt-in, see Lockfiles):
// the specs of its GEM and GIT sections ("    rack (2.2.3)"); PATH
// sections are the application's own gems. A platform suffix
// ("nokogiri (1.16.2-x86_64-linux)") is not part of the version.
type gemLock struct{}

func (gemLock) Type() string { return "gem-lock" }
func (gemLock) Version() int { return 1 }

func (gemLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "Gemfile.lock" && !inVendoredTree(p)
}

func (gemLock) Analyze(_ context.Context, in Input) (*Result, error) {
	res, err := parseGemfileLock(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

func parseGemfileLock(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	l := newPkgList(TypeGem, in)
	sc := bufio.NewScanner(bytes.NewReader(in.Content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var section string
	inSpecs := false
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] != ' ' {
			section, inSpecs = strings.TrimSpace(line), false
			continue
		}
		if section != "GEM" && section != "GIT" {
			continue
		}
		if line == "  specs:" {
			inSpecs = true
			continue
		}
		if !inSpecs || !strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "     ") {
			continue // a field of the section, or a spec's dependency
		}
		spec := strings.TrimSpace(line)
		name, rest, ok := strings.Cut(spec, " (")
		if !ok || !strings.HasSuffix(rest, ")") || name == "" {
			return nil, fmt.Errorf("line %d: spec %q: want \"name (version)\"", lineNo, spec)
		}
		version := strings.TrimSuffix(rest, ")")
		// RubyGems versions have no "-": one starts the platform.
		version, _, _ = strings.Cut(version, "-")
		if err := l.add(name, version); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	return l.result(), nil
}

// gemSpec reads the specifications RubyGems writes for every installed gem
// (".../specifications/rack-2.2.3.gemspec", and default gems under
// "specifications/default/"): Ruby code whose name and version
// assignments are read with regular expressions, never evaluated.
type gemSpec struct{}

func (gemSpec) Type() string { return "gemspec" }
func (gemSpec) Version() int { return 1 }

func (gemSpec) Required(p string, info fs.FileInfo) bool {
	if !strings.HasSuffix(p, ".gemspec") {
		return false
	}
	dir := path.Dir(p)
	if path.Base(dir) == "default" {
		dir = path.Dir(dir)
	}
	return path.Base(dir) == "specifications" && (info == nil || info.Size() <= maxManifestSize)
}

var (
	gemspecName    = regexp.MustCompile(`(?m)^\s*\w+\.name\s*=\s*["']([^"'\n]+)["']`)
	gemspecVersion = regexp.MustCompile(`(?m)^\s*\w+\.version\s*=\s*(?:Gem::Version\.new\(\s*)?["']([^"'\n]+)["']`)
)

func (gemSpec) Analyze(_ context.Context, in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	name := gemspecName.FindSubmatch(in.Content)
	version := gemspecVersion.FindSubmatch(in.Content)
	if name == nil || version == nil {
		return nil, fmt.Errorf("%s: no name or version assignment (want s.name = \"...\" and s.version = \"...\")", in.Path)
	}
	l := newPkgList(TypeGem, in)
	if err := l.add(string(name[1]), string(version[1])); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return l.result(), nil
}
