package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// pythonLock reads the dependency pins of Python applications (opt-in, see
// Lockfiles): requirements.txt (only "==" and "===" pins: a range names no
// installed version), poetry.lock (the old "dev" category, or for Poetry
// 1.2 and later what pyproject.toml's main group does not reach, is marked
// Dev) and Pipfile.lock ("develop" is marked Dev). Packages are reported as
// TypePython.
type pythonLock struct{}

func (pythonLock) Type() string { return "python-lock" }
func (pythonLock) Version() int { return 2 }

func (pythonLock) Required(p string, info fs.FileInfo) bool {
	switch path.Base(p) {
	case "requirements.txt", "poetry.lock", "Pipfile.lock":
		return !inVendoredTree(p)
	}
	return includableRequirements(p, info) && !inVendoredTree(p)
}

// includableRequirements reports whether p may be a requirements or
// constraints file that a requirements.txt includes ("-r base.txt", "-c
// constraints.txt"): a .txt file named for requirements or constraints,
// or in a "requirements" directory, of at most maxManifestFileSize.
func includableRequirements(p string, info fs.FileInfo) bool {
	base := strings.ToLower(path.Base(p))
	if !strings.HasSuffix(base, ".txt") || (info != nil && info.Size() > maxManifestFileSize) {
		return false
	}
	return strings.Contains(base, "requirements") || strings.Contains(base, "constraints") || path.Base(path.Dir(p)) == "requirements"
}

func (pythonLock) Analyze(_ context.Context, in Input) (*Result, error) {
	var res *Result
	var err error
	switch path.Base(in.Path) {
	case "requirements.txt":
		res, err = parseRequirements(in)
		if res != nil {
			res.Requirements.IncludedOnly = false
		}
	case "poetry.lock":
		res, err = parsePoetryLock(in)
	case "Pipfile.lock":
		res, err = parsePipfileLock(in)
	default:
		if !includableRequirements(in.Path, nil) {
			return nil, ErrNotApplicable
		}
		res, err = parseRequirements(in)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

// parseRequirements reads pinned requirements ("name==1.2.3", with extras,
// environment markers, per-requirement options and "\" continuations).
// URLs, local paths and wildcard requirements are skipped; "-r" and "-c"
// files are recorded (Run follows them), the names of unpinned
// requirements too (a constraints file may pin them); other options (-e,
// --hash, ...) are skipped. The result is IncludedOnly (Analyze clears it
// for a requirements.txt).
func parseRequirements(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	l := newPkgList(TypePython, in)
	req := &Requirements{IncludedOnly: true}
	sc := bufio.NewScanner(bytes.NewReader(in.Content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var logical strings.Builder
	lineNo, startLine := 0, 0
	flush := func() error {
		s := logical.String()
		logical.Reset()
		if opt, file, ok := requirementsOption(s); ok {
			if len(req.Includes)+len(req.Constraints) >= maxRequirementsIncludes {
				return fmt.Errorf("line %d: more than %d -r/-c options", startLine, maxRequirementsIncludes)
			}
			if opt == "r" {
				req.Includes = append(req.Includes, file)
			} else {
				req.Constraints = append(req.Constraints, file)
			}
			return nil
		}
		name, version, ok := parseRequirementLine(s)
		if !ok {
			if n := unpinnedRequirement(s); n != "" && len(req.Unpinned) < maxManifestEntries {
				req.Unpinned = append(req.Unpinned, n)
			}
			return nil
		}
		if err := l.add(name, version); err != nil {
			return fmt.Errorf("line %d: %w", startLine, err)
		}
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if logical.Len() == 0 {
			startLine = lineNo
		}
		if strings.HasSuffix(line, "\\") {
			logical.WriteString(strings.TrimSuffix(line, "\\"))
			logical.WriteByte(' ')
			if logical.Len() > 1<<20 {
				return nil, fmt.Errorf("line %d: continued line longer than 1 MiB", startLine)
			}
			continue
		}
		logical.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	res := l.result()
	res.Requirements = req
	return res, nil
}

// maxRequirementsIncludes bounds the -r and -c options of one file.
const maxRequirementsIncludes = 64

// requirementsOption recognizes "-r file", "-rfile", "--requirement file",
// "--requirement=file" (opt "r") and the same for -c/--constraint (opt
// "c").
func requirementsOption(s string) (opt, file string, ok bool) {
	for j := 0; j < len(s); j++ {
		if s[j] == '#' && (j == 0 || s[j-1] == ' ' || s[j-1] == '\t') {
			s = s[:j]
			break
		}
	}
	s = strings.TrimSpace(s)
	for _, o := range []struct{ long, short, opt string }{{"--requirement", "-r", "r"}, {"--constraint", "-c", "c"}} {
		var rest string
		switch {
		case strings.HasPrefix(s, o.long):
			rest = strings.TrimPrefix(s, o.long)
			if rest != "" && rest[0] != '=' && rest[0] != ' ' && rest[0] != '\t' {
				continue
			}
			rest = strings.TrimPrefix(strings.TrimSpace(rest), "=")
		case strings.HasPrefix(s, o.short):
			rest = strings.TrimPrefix(s, o.short)
		default:
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest == "" || strings.Contains(rest, "://") {
			return "", "", false // a URL: not in the image
		}
		return o.opt, rest, true
	}
	return "", "", false
}

// unpinnedRequirement returns the name of a requirement line that pins no
// version ("requests", "requests>=2.0", "flask[async]"), "" for anything
// else.
func unpinnedRequirement(s string) string {
	for j := 0; j < len(s); j++ {
		if s[j] == '#' && (j == 0 || s[j-1] == ' ' || s[j-1] == '\t') {
			s = s[:j]
			break
		}
	}
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "-") || strings.Contains(s, "@") || strings.Contains(s, "://") {
		return ""
	}
	end := strings.IndexAny(s, "[<>=!~; \t")
	if end < 0 {
		end = len(s)
	}
	if n := s[:end]; validPythonName(n) && !strings.ContainsAny(n, "/\\") {
		return n
	}
	return ""
}

// parseRequirementLine returns the name and pinned version of one logical
// requirements line, ok false when it pins nothing.
func parseRequirementLine(s string) (name, version string, ok bool) {
	// A comment starts at "#" at the beginning or after whitespace.
	for j := 0; j < len(s); j++ {
		if s[j] == '#' && (j == 0 || s[j-1] == ' ' || s[j-1] == '\t') {
			s = s[:j]
			break
		}
	}
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "-") {
		return "", "", false
	}
	// Per-requirement options ("--hash=...") and environment markers.
	if i := strings.Index(s, " -"); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if strings.Contains(s, "@") || strings.Contains(s, "://") {
		return "", "", false // a direct reference: no version to match
	}
	op := "==="
	i := strings.Index(s, op)
	if i < 0 {
		op = "=="
		i = strings.Index(s, op)
	}
	if i <= 0 {
		return "", "", false
	}
	name, version = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+len(op):])
	if j := strings.IndexByte(name, '['); j >= 0 {
		name = strings.TrimSpace(name[:j])
	}
	if !validPythonVersion(version) || !validPythonName(name) {
		return "", "", false
	}
	return name, version, true
}

// validPythonVersion reports whether s can be a PEP 440 version (its
// characters, with a local part); wildcards and ranges cannot.
func validPythonVersion(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '+', r == '!':
		default:
			return false
		}
	}
	return true
}

// validPythonName reports whether s is a distribution name (PEP 508).
func validPythonName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// parsePoetryLock reads poetry.lock (lock-version 1.x and 2.x).
func parsePoetryLock(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	var lock struct {
		Package []struct {
			Name         string         `toml:"name"`
			Version      string         `toml:"version"`
			Category     string         `toml:"category"`
			Dependencies map[string]any `toml:"dependencies"`
		} `toml:"package"`
	}
	if _, err := toml.Decode(string(in.Content), &lock); err != nil {
		return nil, tomlError(err)
	}
	l := newPkgList(TypePython, in)
	g := &DepGraph{Manifest: "pyproject.toml", Kind: "poetry", Keys: map[string]int{}}
	categories := false
	for i, p := range lock.Package {
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("package %d: no name or version", i+1)
		}
		categories = categories || p.Category != ""
		if err := l.addDev(p.Name, p.Version, p.Category == "dev"); err != nil {
			return nil, err
		}
		node := DepNode{Name: strings.TrimSpace(p.Name), Version: strings.TrimSpace(p.Version)}
		deps := make([]string, 0, len(p.Dependencies))
		for n := range p.Dependencies {
			deps = append(deps, normalizePythonName(n))
		}
		sort.Strings(deps)
		node.Deps = deps
		g.Keys[normalizePythonName(p.Name)] = len(g.Nodes)
		g.Nodes = append(g.Nodes, node)
	}
	res := l.result()
	if !categories {
		// Poetry 1.2 and later: the groups are in pyproject.toml only
		res.Graph = g
	}
	return res, nil
}

// tomlError keeps the line BurntSushi/toml reports ("toml: line 3 ...").
func tomlError(err error) error {
	if pe, ok := err.(toml.ParseError); ok {
		return fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
	}
	return err
}

// parsePipfileLock reads Pipfile.lock's "default" section.
func parsePipfileLock(in Input) (*Result, error) {
	type pin struct {
		Version string `json:"version"`
	}
	var lock struct {
		Default map[string]pin `json:"default"`
		Develop map[string]pin `json:"develop"`
	}
	if err := decodeJSON(in.Content, &lock); err != nil {
		return nil, err
	}
	l := newPkgList(TypePython, in)
	for _, sec := range []struct {
		pins map[string]pin
		dev  bool
	}{{lock.Default, false}, {lock.Develop, true}} {
		names := make([]string, 0, len(sec.pins))
		for n := range sec.pins {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := sec.pins[n].Version
			if !strings.HasPrefix(v, "==") {
				continue // a VCS or path dependency: no version
			}
			if err := l.addDev(n, strings.TrimLeft(v, "="), sec.dev); err != nil {
				return nil, err
			}
		}
	}
	return l.result(), nil
}
