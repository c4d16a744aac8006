package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// jsLock reads yarn.lock (yarn 1 and yarn 2+ "berry") and pnpm-lock.yaml
// (lockfileVersion 5.x, 6.x and 9.x) of JavaScript applications (opt-in,
// see Lockfiles). Packages are reported as TypeNpm. Workspace, link, file,
// portal and patch entries are left out (they are the application's own
// code, or a copy of a registry package listed anyway). Development-only
// packages are marked Dev: pnpm marks them (5.x, 6.x) or lists them per
// importer (9.x); yarn.lock does not say, so its result carries its
// dependency graph and Run marks what package.json's dependencies do not
// reach.
type jsLock struct{}

func (jsLock) Type() string { return "js-lock" }
func (jsLock) Version() int { return 3 }

func (jsLock) Required(p string, _ fs.FileInfo) bool {
	switch path.Base(p) {
	case "yarn.lock", "pnpm-lock.yaml":
		return !inVendoredTree(p)
	}
	return false
}

func (jsLock) Analyze(_ context.Context, in Input) (*Result, error) {
	var res *Result
	var err error
	switch path.Base(in.Path) {
	case "yarn.lock":
		res, err = parseYarnLock(in)
	case "pnpm-lock.yaml":
		res, err = parsePnpmLock(in)
	default:
		return nil, ErrNotApplicable
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

// isYarnBerry reports whether a yarn.lock is YAML (yarn 2+): it has a
// top-level __metadata entry.
func isYarnBerry(b []byte) bool {
	return bytes.HasPrefix(b, []byte("__metadata:")) || bytes.Contains(b, []byte("\n__metadata:"))
}

func parseYarnLock(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	if isYarnBerry(in.Content) {
		return parseYarnBerry(in)
	}
	return parseYarnV1(in)
}

// npmNameOf splits "name@range" and "@scope/name@range" at the "@" that
// ends the name.
func npmNameOf(desc string) (name, rest string, ok bool) {
	start := 0
	if strings.HasPrefix(desc, "@") {
		start = 1
	}
	i := strings.IndexByte(desc[start:], '@')
	if i < 0 || i+start == 0 {
		return "", "", false
	}
	i += start
	return desc[:i], desc[i+1:], true
}

// localProtocol reports whether a yarn/pnpm range or resolution names the
// application's own code rather than a registry package.
func localProtocol(r string) bool {
	for _, p := range []string{"workspace:", "link:", "file:", "portal:", "patch:", "exec:"} {
		if strings.HasPrefix(r, p) {
			return true
		}
	}
	return false
}

// parseYarnV1 reads yarn's own lock format: unindented entry headers
// ("lodash@^4.17.20, lodash@^4.17.21:") followed by indented fields, of
// which version and the dependencies are used. The result carries the
// dependency graph, for telling development-only packages apart with the
// package.json beside it.
func parseYarnV1(in Input) (*Result, error) {
	l := newPkgList(TypeNpm, in)
	g := &DepGraph{Manifest: "package.json", Kind: "yarn", Keys: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(in.Content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	lineNo, entryLine := 0, 0
	var name string
	local, haveVersion, inDeps := false, true, false
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			if !haveVersion {
				return nil, fmt.Errorf("line %d: entry %q has no version", entryLine, name)
			}
			if !strings.HasSuffix(trimmed, ":") {
				return nil, fmt.Errorf("line %d: entry header %q does not end with ':'", lineNo, trimmed)
			}
			patterns := strings.Split(strings.TrimSuffix(trimmed, ":"), ",")
			first := strings.Trim(strings.TrimSpace(patterns[0]), `"`)
			n, rng, ok := npmNameOf(first)
			if !ok {
				return nil, fmt.Errorf("line %d: entry %q does not name a package (want name@range)", lineNo, first)
			}
			if target, ok := strings.CutPrefix(rng, "npm:"); ok {
				// an alias ("foo@npm:bar@^1.0.0") installs bar
				if an, _, ok := npmNameOf(target); ok {
					n = an
				}
			}
			name, entryLine, haveVersion, inDeps = n, lineNo, false, false
			local = localProtocol(rng)
			if len(g.Nodes) >= maxManifestEntries {
				return nil, fmt.Errorf("line %d: more than %d entries", lineNo, maxManifestEntries)
			}
			g.Nodes = append(g.Nodes, DepNode{})
			for _, p := range patterns {
				g.Keys[strings.Trim(strings.TrimSpace(p), `"`)] = len(g.Nodes) - 1
			}
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: indented field outside an entry", lineNo)
		}
		node := &g.Nodes[len(g.Nodes)-1]
		if strings.HasPrefix(line, "    ") {
			if inDeps {
				dn, dr, err := yarnV1Dep(trimmed)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", lineNo, err)
				}
				node.Deps = append(node.Deps, dn+"@"+dr)
			}
			continue
		}
		inDeps = trimmed == "dependencies:" || trimmed == "optionalDependencies:"
		if key, val, ok := strings.Cut(trimmed, " "); ok && key == "version" {
			v, err := unquoteYarn(strings.TrimSpace(val))
			if err != nil {
				return nil, fmt.Errorf("line %d: version: %w", lineNo, err)
			}
			haveVersion = true
			if !local {
				node.Name, node.Version = name, strings.TrimSpace(v)
				if err := l.add(name, v); err != nil {
					return nil, fmt.Errorf("line %d: %w", lineNo, err)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if !haveVersion {
		return nil, fmt.Errorf("line %d: entry %q has no version", entryLine, name)
	}
	res := l.result()
	res.Graph = g
	return res, nil
}

// yarnV1Dep splits a dependency line of yarn.lock v1 ("chalk \"^2.0.0\"",
// "\"@babel/types\" \"^7.0.0\"").
func yarnV1Dep(s string) (name, rng string, err error) {
	var fields []string
	for s != "" {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, `"`) {
			q, rest, ok := cutQuoted(s)
			if !ok {
				return "", "", fmt.Errorf("dependency %q: unterminated quote", s)
			}
			fields = append(fields, q)
			s = rest
			continue
		}
		f, rest, _ := strings.Cut(s, " ")
		fields = append(fields, f)
		s = rest
	}
	if len(fields) != 2 {
		return "", "", fmt.Errorf("dependency line: want name and range, got %d fields", len(fields))
	}
	return fields[0], fields[1], nil
}

// cutQuoted unquotes the Go-style quoted string at the start of s.
func cutQuoted(s string) (q, rest string, ok bool) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			u, err := strconv.Unquote(s[:i+1])
			if err != nil {
				return "", "", false
			}
			return u, s[i+1:], true
		}
	}
	return "", "", false
}

func unquoteYarn(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		return strconv.Unquote(s)
	}
	return s, nil
}

// yarnBerryEntry is one entry of a yarn 2+ lock file.
type yarnBerryEntry struct {
	Version              string            `yaml:"version"`
	Resolution           string            `yaml:"resolution"`
	LinkType             string            `yaml:"linkType"`
	Dependencies         map[string]string `yaml:"dependencies"`
	OptionalDependencies map[string]string `yaml:"optionalDependencies"`
}

// parseYarnBerry reads the YAML lock file of yarn 2 and later, its entries
// in chunks (yamlTopChunks) so that the time stays linear in their number.
func parseYarnBerry(in Input) (*Result, error) {
	chunks, err := yamlTopChunks(in.Content)
	if err != nil {
		return nil, fmt.Errorf("yarn berry lock: %w", err)
	}
	var lock map[string]yarnBerryEntry
	for _, c := range chunks {
		var part map[string]yarnBerryEntry
		if err := yaml.Unmarshal(c, &part); err != nil {
			return nil, fmt.Errorf("yarn berry lock: %w", err)
		}
		if err := mergeMap(&lock, part, "the top level"); err != nil {
			return nil, fmt.Errorf("yarn berry lock: %w", err)
		}
	}
	keys := make([]string, 0, len(lock))
	for k := range lock {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	l := newPkgList(TypeNpm, in)
	g := &DepGraph{Manifest: "package.json", Kind: "yarn-berry", Keys: map[string]int{}}
	for _, k := range keys {
		e := lock[k]
		if k == "__metadata" {
			continue
		}
		g.Nodes = append(g.Nodes, DepNode{})
		node := &g.Nodes[len(g.Nodes)-1]
		for _, p := range strings.Split(k, ",") {
			g.Keys[strings.TrimSpace(p)] = len(g.Nodes) - 1
		}
		for _, deps := range []map[string]string{e.Dependencies, e.OptionalDependencies} {
			names := make([]string, 0, len(deps))
			for n := range deps {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				node.Deps = append(node.Deps, n+"@"+deps[n])
			}
		}
		if e.LinkType == "soft" {
			continue
		}
		desc := e.Resolution
		if desc == "" {
			desc, _, _ = strings.Cut(k, ",")
		}
		name, rng, ok := npmNameOf(strings.TrimSpace(desc))
		if !ok {
			return nil, fmt.Errorf("entry %q: resolution %q does not name a package", k, e.Resolution)
		}
		if localProtocol(rng) || !strings.HasPrefix(rng, "npm:") {
			continue // workspace, patch, git or tarball: not a registry version
		}
		if e.Version == "" {
			return nil, fmt.Errorf("entry %q has no version", k)
		}
		node.Name, node.Version = name, strings.TrimSpace(e.Version)
		if err := l.add(name, e.Version); err != nil {
			return nil, err
		}
	}
	res := l.result()
	res.Graph = g
	return res, nil
}

// pnpmDep is one dependency of a pnpm 9 importer.
type pnpmDep struct {
	Version string `yaml:"version"`
}

// pnpmLockFile is what parsePnpmLock reads of pnpm-lock.yaml.
type pnpmLockFile struct {
	LockfileVersion any `yaml:"lockfileVersion"`
	Importers       map[string]struct {
		Dependencies         map[string]pnpmDep `yaml:"dependencies"`
		OptionalDependencies map[string]pnpmDep `yaml:"optionalDependencies"`
		DevDependencies      map[string]pnpmDep `yaml:"devDependencies"`
	} `yaml:"importers"`
	Packages map[string]struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
		Dev     bool   `yaml:"dev"`
	} `yaml:"packages"`
	Snapshots map[string]struct {
		Dependencies         map[string]string `yaml:"dependencies"`
		OptionalDependencies map[string]string `yaml:"optionalDependencies"`
	} `yaml:"snapshots"`
}

// unmarshalPnpmLock parses a pnpm lock file in the pieces yamlSections
// makes, so that its parsing time stays linear in the number of packages.
func unmarshalPnpmLock(b []byte) (*pnpmLockFile, error) {
	docs, err := yamlSections(b)
	if err != nil {
		return nil, err
	}
	var lock pnpmLockFile
	if err := yaml.Unmarshal(docs[0].content, &lock); err != nil {
		return nil, err
	}
	for _, d := range docs[1:] {
		var part pnpmLockFile
		if err := yaml.Unmarshal(d.content, &part); err != nil {
			return nil, err
		}
		if err := mergeMap(&lock.Importers, part.Importers, d.section); err != nil {
			return nil, err
		}
		if err := mergeMap(&lock.Packages, part.Packages, d.section); err != nil {
			return nil, err
		}
		if err := mergeMap(&lock.Snapshots, part.Snapshots, d.section); err != nil {
			return nil, err
		}
	}
	return &lock, nil
}

// mergeMap adds the entries of part to *m; a key in both is an error, as
// the parser makes it within one mapping.
func mergeMap[V any](m *map[string]V, part map[string]V, section string) error {
	if len(part) > 0 && *m == nil {
		*m = make(map[string]V, len(part))
	}
	for k, v := range part {
		if _, dup := (*m)[k]; dup {
			return fmt.Errorf("section %s: mapping key %q already defined", section, k)
		}
		(*m)[k] = v
	}
	return nil
}

// parsePnpmLock reads pnpm-lock.yaml.
func parsePnpmLock(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	lock, err := unmarshalPnpmLock(in.Content)
	if err != nil {
		return nil, fmt.Errorf("pnpm lock: %w", err)
	}
	ver := fmt.Sprint(lock.LockfileVersion)
	major, _, _ := strings.Cut(strings.Trim(ver, `'"`), ".")
	m, err := strconv.Atoi(major)
	if err != nil || m < 5 {
		return nil, fmt.Errorf("lockfileVersion %q: want 5.x, 6.x or 9.x", ver)
	}
	l := newPkgList(TypeNpm, in)
	// pnpm 9 lists dependencies per importer and package snapshots: walk
	// the production graph from the importers.
	if m >= 9 && lock.Importers != nil {
		seen := map[string]bool{}
		var queue []string
		push := func(name, version string) {
			if localProtocol(version) {
				return
			}
			key := name + "@" + version
			if !seen[key] {
				seen[key] = true
				queue = append(queue, key)
			}
		}
		imps := make([]string, 0, len(lock.Importers))
		for k := range lock.Importers {
			imps = append(imps, k)
		}
		sort.Strings(imps)
		// production dependencies first, then what only devDependencies
		// reach, marked Dev
		for _, dev := range []bool{false, true} {
			for _, k := range imps {
				imp := lock.Importers[k]
				roots := []map[string]pnpmDep{imp.Dependencies, imp.OptionalDependencies}
				if dev {
					roots = []map[string]pnpmDep{imp.DevDependencies}
				}
				for _, deps := range roots {
					for n, d := range deps {
						push(pnpmDepRef(n, d.Version))
					}
				}
			}
			sort.Strings(queue)
			for len(queue) > 0 {
				key := queue[0]
				queue = queue[1:]
				name, version, ok := pnpmKey(key, m)
				if !ok {
					return nil, fmt.Errorf("snapshot %q does not name a package", key)
				}
				if p, ok := lock.Packages[strings.SplitN(key, "(", 2)[0]]; ok && p.Version != "" {
					version = p.Version
				}
				if err := l.addDev(name, version, dev); err != nil {
					return nil, err
				}
				s := lock.Snapshots[key]
				for _, deps := range []map[string]string{s.Dependencies, s.OptionalDependencies} {
					names := make([]string, 0, len(deps))
					for n := range deps {
						names = append(names, n)
					}
					sort.Strings(names)
					for _, n := range names {
						push(pnpmDepRef(n, deps[n]))
					}
				}
			}
		}
		return l.result(), nil
	}
	keys := make([]string, 0, len(lock.Packages))
	for k := range lock.Packages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := lock.Packages[k]
		name, version, ok := pnpmKey(k, m)
		if p.Name != "" && p.Version != "" {
			name, version, ok = p.Name, p.Version, true
		}
		if !ok {
			continue // a git or tarball dependency without name and version
		}
		if err := l.addDev(name, version, p.Dev); err != nil {
			return nil, err
		}
	}
	return l.result(), nil
}

// pnpmDepRef returns the snapshot name and version a pnpm 9 dependency
// points at: its own name, or an alias's target ("foo: bar@1.0.0").
func pnpmDepRef(name, version string) (string, string) {
	head, _, _ := strings.Cut(version, "(")
	if n, v, ok := npmNameOf(strings.TrimPrefix(head, "npm:")); ok {
		return n, v + strings.TrimPrefix(version, head)
	}
	return name, version
}

// pnpmKey splits a pnpm package key: "/name/1.2.3_peer@1" (5.x),
// "/name@1.2.3(peer@1)" (6.x), "name@1.2.3(peer@1)" (9.x).
func pnpmKey(key string, major int) (name, version string, ok bool) {
	k := strings.TrimPrefix(key, "/")
	if major < 6 {
		i := strings.LastIndexByte(k, '/')
		if i <= 0 {
			return "", "", false
		}
		name, version = k[:i], k[i+1:]
		if j := strings.IndexByte(version, '_'); j >= 0 {
			version = version[:j]
		}
	} else {
		k, _, _ = strings.Cut(k, "(")
		var rest string
		if name, rest, ok = npmNameOf(k); !ok {
			return "", "", false
		}
		version = rest
	}
	if name == "" || version == "" || strings.Contains(version, ":") || strings.Contains(version, "/") {
		return "", "", false
	}
	return name, version, true
}
