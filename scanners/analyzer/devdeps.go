package analyzer

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Development-only packages.
//
// Some lock files do not say which of their packages are for development
// only (yarn.lock, poetry.lock of Poetry 1.2 and later): the project's
// manifest beside them (package.json, pyproject.toml) does. Analyzers read
// one file at a time and their results are cached per layer, so a lock
// file's result carries its dependency graph (DepGraph) and a manifest's
// result what it declares (Manifest); Run joins the two after the layers
// are overlaid, so the lock file and its manifest may come from different
// layers (the upper layer's copy of each wins, as on the running
// container's disk). A lock file with no manifest beside it in the image
// has all its packages reported.

// maxManifestFileSize bounds the package.json and pyproject.toml files read
// for their declared dependencies; an application's is a few KiB.
const maxManifestFileSize = 4 << 20

// DepGraph is a lock file's dependency graph, for telling its
// development-only packages apart with the manifest beside it.
type DepGraph struct {
	// Manifest is the base name of the manifest in the lock file's
	// directory ("package.json", "pyproject.toml").
	Manifest string
	// Kind says how a manifest's dependency becomes a key: "yarn" (name@range),
	// "yarn-berry" (name@range, "npm:" added to a bare range), "poetry"
	// (normalized name).
	Kind string
	// Keys maps every key to its node in Nodes.
	Keys map[string]int
	// Nodes are the lock file's entries.
	Nodes []DepNode
}

// DepNode is one entry of a lock file.
type DepNode struct {
	// Name and Version are the package reported for the entry, empty for
	// an entry that is not reported (a workspace).
	Name, Version string
	// Deps are the keys of the entries it depends on.
	Deps []string
}

// Manifest is what a project's manifest declares.
type Manifest struct {
	// Deps are the production dependencies (dependencies and
	// optionalDependencies; Poetry's main group and [project] ones).
	Deps []ManifestDep
	// Dev are the development dependencies, for the record.
	Dev []ManifestDep
	// Workspaces are package.json's workspace globs.
	Workspaces []string
}

// ManifestDep is one declared dependency.
type ManifestDep struct {
	Name, Range string
}

// projectManifest reads package.json and pyproject.toml files (opt-in with
// the lock files): not packages, but what a project declares, for the lock
// file beside it.
type projectManifest struct{}

func (projectManifest) Type() string { return "project-manifest" }
func (projectManifest) Version() int { return 1 }

func (projectManifest) Required(p string, info fs.FileInfo) bool {
	switch path.Base(p) {
	case "package.json", "pyproject.toml":
	default:
		return false
	}
	if info != nil && info.Size() > maxManifestFileSize {
		return false
	}
	return !inVendoredTree(p)
}

func (projectManifest) Analyze(_ context.Context, in Input) (*Result, error) {
	if len(in.Content) > maxManifestFileSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", in.Path, maxManifestFileSize>>20)
	}
	var m *Manifest
	var err error
	switch path.Base(in.Path) {
	case "package.json":
		m, err = parsePackageJSONManifest(in.Content)
	case "pyproject.toml":
		m, err = parsePyprojectManifest(in.Content)
	default:
		return nil, ErrNotApplicable
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return &Result{Manifest: m}, nil
}

// parsePackageJSONManifest reads the dependencies package.json declares.
func parsePackageJSONManifest(b []byte) (*Manifest, error) {
	var pj struct {
		Dependencies         map[string]any `json:"dependencies"`
		OptionalDependencies map[string]any `json:"optionalDependencies"`
		DevDependencies      map[string]any `json:"devDependencies"`
		Workspaces           any            `json:"workspaces"`
	}
	if err := decodeJSON(b, &pj); err != nil {
		return nil, err
	}
	m := &Manifest{}
	m.Deps = append(depList(pj.Dependencies), depList(pj.OptionalDependencies)...)
	m.Dev = depList(pj.DevDependencies)
	// "workspaces": ["packages/*"] or {"packages": ["packages/*"]}
	var globs []any
	switch w := pj.Workspaces.(type) {
	case []any:
		globs = w
	case map[string]any:
		globs, _ = w["packages"].([]any)
	}
	for _, g := range globs {
		if s, ok := g.(string); ok && s != "" {
			m.Workspaces = append(m.Workspaces, s)
		}
	}
	return m, nil
}

// depList turns a package.json dependency object into a sorted list; values
// that are not strings are skipped.
func depList(deps map[string]any) []ManifestDep {
	var out []ManifestDep
	for n, v := range deps {
		if s, ok := v.(string); ok {
			out = append(out, ManifestDep{Name: n, Range: s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// pep508Name is the name at the start of a PEP 508 requirement.
var pep508Name = regexp.MustCompile(`^\s*([A-Za-z0-9][A-Za-z0-9._-]*)`)

// parsePyprojectManifest reads the dependencies pyproject.toml declares:
// [project] dependencies and optional-dependencies (PEP 621, Poetry 2),
// [tool.poetry.dependencies] (main group) as production ones;
// [tool.poetry.group.*.dependencies] and [tool.poetry.dev-dependencies] as
// development ones.
func parsePyprojectManifest(b []byte) (*Manifest, error) {
	var pp struct {
		Project struct {
			Dependencies         []string            `toml:"dependencies"`
			OptionalDependencies map[string][]string `toml:"optional-dependencies"`
		} `toml:"project"`
		Tool struct {
			Poetry struct {
				Dependencies    map[string]any `toml:"dependencies"`
				DevDependencies map[string]any `toml:"dev-dependencies"`
				Group           map[string]struct {
					Dependencies map[string]any `toml:"dependencies"`
				} `toml:"group"`
			} `toml:"poetry"`
		} `toml:"tool"`
	}
	if _, err := toml.Decode(string(b), &pp); err != nil {
		return nil, tomlError(err)
	}
	m := &Manifest{}
	addReq := func(r string) {
		if mm := pep508Name.FindStringSubmatch(r); mm != nil {
			m.Deps = append(m.Deps, ManifestDep{Name: mm[1], Range: strings.TrimSpace(r[len(mm[0]):])})
		}
	}
	for _, r := range pp.Project.Dependencies {
		addReq(r)
	}
	extras := make([]string, 0, len(pp.Project.OptionalDependencies))
	for k := range pp.Project.OptionalDependencies {
		extras = append(extras, k)
	}
	sort.Strings(extras)
	for _, k := range extras {
		for _, r := range pp.Project.OptionalDependencies[k] {
			addReq(r)
		}
	}
	for _, d := range poetryDeps(pp.Tool.Poetry.Dependencies) {
		if !strings.EqualFold(d.Name, "python") {
			m.Deps = append(m.Deps, d)
		}
	}
	m.Dev = poetryDeps(pp.Tool.Poetry.DevDependencies)
	groups := make([]string, 0, len(pp.Tool.Poetry.Group))
	for g := range pp.Tool.Poetry.Group {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		m.Dev = append(m.Dev, poetryDeps(pp.Tool.Poetry.Group[g].Dependencies)...)
	}
	return m, nil
}

// poetryDeps lists a Poetry dependency table ("name = '^1.0'" or
// "name = {version = ...}").
func poetryDeps(deps map[string]any) []ManifestDep {
	var out []ManifestDep
	for n, v := range deps {
		r, _ := v.(string)
		out = append(out, ManifestDep{Name: n, Range: r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// normalizePythonName is PEP 503's normalized form of a distribution name.
func normalizePythonName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	var sb strings.Builder
	sep := false
	for _, r := range n {
		if r == '-' || r == '_' || r == '.' {
			sep = true
			continue
		}
		if sep && sb.Len() > 0 {
			sb.WriteByte('-')
		}
		sep = false
		sb.WriteRune(r)
	}
	return sb.String()
}

// hasProtocol matches a yarn range that names its protocol ("npm:",
// "workspace:", "patch:").
var hasProtocol = regexp.MustCompile(`^[a-z][a-z+.-]*:`)

// rootKey is the graph key a manifest's dependency points at.
func (g *DepGraph) rootKey(d ManifestDep) string {
	switch g.Kind {
	case "poetry":
		return normalizePythonName(d.Name)
	case "yarn-berry":
		if !hasProtocol.MatchString(d.Range) {
			return d.Name + "@npm:" + d.Range
		}
	}
	return d.Name + "@" + d.Range
}

// prodPackages returns the name@version of every package reachable from
// roots. A root whose range is not in the lock file (package.json edited
// after the lock was written) reaches every entry of its name: better a
// development package reported than a production one missed.
func (g *DepGraph) prodPackages(roots []ManifestDep) map[string]bool {
	prod := map[string]bool{}
	seen := make([]bool, len(g.Nodes))
	var queue []int
	pushNode := func(i int) {
		if i >= 0 && i < len(g.Nodes) && !seen[i] {
			seen[i] = true
			queue = append(queue, i)
		}
	}
	push := func(key string) {
		if i, ok := g.Keys[key]; ok {
			pushNode(i)
		}
	}
	var byName map[string][]int
	for _, r := range roots {
		if i, ok := g.Keys[g.rootKey(r)]; ok {
			pushNode(i)
			continue
		}
		if byName == nil {
			byName = map[string][]int{}
			for i, n := range g.Nodes {
				byName[n.Name] = append(byName[n.Name], i)
			}
		}
		name := r.Name
		if g.Kind == "poetry" {
			name = g.rootKey(r)
			for i, n := range g.Nodes {
				if normalizePythonName(n.Name) == name {
					pushNode(i)
				}
			}
			continue
		}
		for _, i := range byName[name] {
			pushNode(i)
		}
	}
	for len(queue) > 0 {
		n := g.Nodes[queue[0]]
		queue = queue[1:]
		if n.Name != "" {
			prod[n.Name+"@"+n.Version] = true
		}
		for _, k := range n.Deps {
			push(k)
		}
	}
	return prod
}

// markDevPackages returns a copy of the packages of a lock file's result,
// those no production dependency of the manifest beside it (in manifests,
// by path) reaches marked Dev; and a warning when there is no manifest.
func markDevPackages(lockPath string, res *Result, manifests map[string]*Manifest) ([]Package, []string) {
	g := res.Graph
	if g == nil {
		return res.Packages, nil
	}
	dir := path.Dir(lockPath)
	mpath := path.Join(dir, g.Manifest)
	m := manifests[mpath]
	if m == nil {
		return res.Packages, []string{fmt.Sprintf("%s: no %s beside it: development-only packages cannot be told apart and are reported", lockPath, g.Manifest)}
	}
	roots := append([]ManifestDep(nil), m.Deps...)
	// workspace members: their production dependencies are roots too
	if len(m.Workspaces) > 0 {
		for p, wm := range manifests {
			if path.Base(p) != g.Manifest || p == mpath || !strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
				continue
			}
			rel := strings.TrimPrefix(path.Dir(p), dir+"/")
			if dir == "." {
				rel = path.Dir(p)
			}
			for _, w := range m.Workspaces {
				if ok, _ := path.Match(strings.TrimPrefix(strings.TrimSuffix(w, "/"), "./"), rel); ok {
					roots = append(roots, wm.Deps...)
					break
				}
			}
		}
	}
	prod := g.prodPackages(roots)
	pkgs := append([]Package(nil), res.Packages...)
	for i := range pkgs {
		if !prod[pkgs[i].Name+"@"+pkgs[i].Version] {
			pkgs[i].Dev = true
		}
	}
	return pkgs, nil
}
