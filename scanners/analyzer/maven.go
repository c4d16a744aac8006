package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"unicode/utf8"
)

// gradleLock reads gradle.lockfile (Gradle dependency locking) of JVM
// applications (opt-in, see Lockfiles): "group:artifact:version=configs"
// lines. Artifacts locked only for test configurations are left out.
// Packages are reported as TypeMaven ("group:artifact").
type gradleLock struct{}

func (gradleLock) Type() string { return "gradle-lock" }
func (gradleLock) Version() int { return 1 }

func (gradleLock) Required(p string, _ fs.FileInfo) bool {
	return path.Base(p) == "gradle.lockfile" && !inVendoredTree(p)
}

func (gradleLock) Analyze(_ context.Context, in Input) (*Result, error) {
	res, err := parseGradleLock(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

func parseGradleLock(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	l := newPkgList(TypeMaven, in)
	sc := bufio.NewScanner(bytes.NewReader(in.Content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		coord, configs, _ := strings.Cut(line, "=")
		if coord == "empty" {
			continue
		}
		parts := strings.Split(coord, ":")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("line %d: %q: want group:artifact:version=configurations", lineNo, line)
		}
		if testOnly(configs) {
			continue
		}
		if err := l.add(parts[0]+":"+parts[1], parts[2]); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	return l.result(), nil
}

// testOnly reports whether every configuration of a gradle.lockfile line
// is a test one ("testCompileClasspath,testRuntimeClasspath").
func testOnly(configs string) bool {
	if configs == "" {
		return false
	}
	for _, c := range strings.Split(configs, ",") {
		if !strings.HasPrefix(strings.TrimSpace(c), "test") {
			return false
		}
	}
	return true
}

// pomFile reads the dependencies a pom.xml declares (opt-in, see
// Lockfiles), without a network and without imported POMs: versions come
// from the dependency, the POM's dependencyManagement and its properties
// (${...}, project.* and parent.*), and, when the POM names a parent that
// may be in the image (relativePath, by default ../pom.xml), Run resolves
// what is left from the parents' (see resolvePomParents). A dependency
// whose version is missing, a range, or an unresolved property is left out
// with a warning naming it. Test and system scope dependencies are left out.
// Packages are reported as TypeMaven ("group:artifact").
type pomFile struct{}

func (pomFile) Type() string { return "pom" }
func (pomFile) Version() int { return 2 }

func (pomFile) Required(p string, _ fs.FileInfo) bool {
	// A pom.xml inside a jar's META-INF/maven is the java analyzer's.
	return path.Base(p) == "pom.xml" && !inVendoredTree(p) && !strings.Contains("/"+p, "/META-INF/maven/") && !strings.Contains("/"+p, "/.m2/repository/")
}

type pomDependency struct {
	GroupID    string `xml:"groupId"`
	ArtifactID string `xml:"artifactId"`
	Version    string `xml:"version"`
	Scope      string `xml:"scope"`
	Type       string `xml:"type"`
}

type pomProperty struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

type pomProject struct {
	XMLName    xml.Name `xml:"project"`
	GroupID    string   `xml:"groupId"`
	ArtifactID string   `xml:"artifactId"`
	Version    string   `xml:"version"`
	Parent     struct {
		GroupID    string `xml:"groupId"`
		ArtifactID string `xml:"artifactId"`
		Version    string `xml:"version"`
		// RelativePath is nil when the element is absent (Maven's
		// default "../pom.xml"), "" for <relativePath/> (no local
		// lookup).
		RelativePath *string `xml:"relativePath"`
	} `xml:"parent"`
	Properties struct {
		Entries []pomProperty `xml:",any"`
	} `xml:"properties"`
	DependencyManagement struct {
		Dependencies []pomDependency `xml:"dependencies>dependency"`
	} `xml:"dependencyManagement"`
	Dependencies []pomDependency `xml:"dependencies>dependency"`
}

func (pomFile) Analyze(_ context.Context, in Input) (*Result, error) {
	res, err := parsePom(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	return res, nil
}

// charsetReader decodes ISO-8859-1 (and its ASCII subset) to UTF-8 for
// POMs that declare it.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii", "windows-1252", "cp1252":
		b, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b))
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return bytes.NewReader(out), nil
	}
	return nil, fmt.Errorf("encoding %q is not supported (want UTF-8 or ISO-8859-1)", label)
}

func parsePom(in Input) (*Result, error) {
	if err := checkManifestSize(in.Content); err != nil {
		return nil, err
	}
	var p pomProject
	d := xml.NewDecoder(bytes.NewReader(in.Content))
	d.CharsetReader = charsetReader
	if err := d.Decode(&p); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("line %d: %s", se.Line, se.Msg)
		}
		return nil, fmt.Errorf("XML: %w", err)
	}
	props := map[string]string{}
	for _, e := range p.Properties.Entries {
		props[e.XMLName.Local] = strings.TrimSpace(e.Value)
	}
	groupID, version := p.GroupID, p.Version
	if groupID == "" {
		groupID = p.Parent.GroupID
	}
	if version == "" {
		version = p.Parent.Version
	}
	for k, v := range map[string]string{
		"project.groupId": groupID, "project.artifactId": p.ArtifactID, "project.version": version,
		"pom.groupId": groupID, "pom.artifactId": p.ArtifactID, "pom.version": version, "version": version,
		"project.parent.groupId": p.Parent.GroupID, "project.parent.version": p.Parent.Version,
		"parent.groupId": p.Parent.GroupID, "parent.version": p.Parent.Version,
	} {
		if _, ok := props[k]; !ok && v != "" {
			props[k] = v
		}
	}
	managed := map[string]string{}
	for _, dep := range p.DependencyManagement.Dependencies {
		g, _ := resolvePomProps(dep.GroupID, props)
		a, _ := resolvePomProps(dep.ArtifactID, props)
		if dep.Version != "" {
			managed[g+":"+a] = dep.Version
		}
	}
	model := &PomModel{
		GroupID: groupID, ArtifactID: p.ArtifactID, Version: version,
		ParentGroupID: strings.TrimSpace(p.Parent.GroupID), ParentArtifactID: strings.TrimSpace(p.Parent.ArtifactID), ParentVersion: strings.TrimSpace(p.Parent.Version),
		Props: props, Managed: managed,
	}
	if model.ParentArtifactID != "" {
		model.ParentPath = "../pom.xml"
		if p.Parent.RelativePath != nil {
			model.ParentPath = strings.TrimSpace(*p.Parent.RelativePath)
		}
	}
	l := newPkgList(TypeMaven, in)
	out := &Result{Pom: model}
	for i, dep := range p.Dependencies {
		field := fmt.Sprintf("dependencies/dependency[%d]", i+1)
		scope := strings.TrimSpace(dep.Scope)
		if scope == "test" || scope == "system" || strings.TrimSpace(dep.Type) == "pom" {
			continue
		}
		d := PomDep{Field: field, GroupID: dep.GroupID, ArtifactID: dep.ArtifactID, Version: dep.Version}
		name, v, warning := resolvePomDep(d, props, managed)
		if warning != "" {
			if model.ParentPath != "" {
				// a parent in the image may resolve it: Run decides
				model.Unresolved = append(model.Unresolved, d)
			} else {
				out.Warnings = append(out.Warnings, in.Path+": "+warning)
			}
			continue
		}
		if err := l.add(name, v); err != nil {
			return nil, err
		}
	}
	out.Packages = l.result().Packages
	return out, nil
}

// resolvePomDep resolves one dependency's coordinates and version from
// props and managed; warning says why it cannot be ("" when it can).
func resolvePomDep(dep PomDep, props, managed map[string]string) (name, version, warning string) {
	g, gok := resolvePomProps(dep.GroupID, props)
	a, aok := resolvePomProps(dep.ArtifactID, props)
	if !gok || !aok || g == "" || a == "" {
		return "", "", fmt.Sprintf("%s: group %q or artifact %q is not resolved here; left out", dep.Field, dep.GroupID, dep.ArtifactID)
	}
	raw := strings.TrimSpace(dep.Version)
	if raw == "" {
		raw = managed[g+":"+a]
	}
	if raw == "" {
		return "", "", fmt.Sprintf("%s (%s:%s): no version declared in this POM (a parent or imported BOM sets it); left out", dep.Field, g, a)
	}
	v, ok := resolvePomProps(raw, props)
	if !ok {
		return "", "", fmt.Sprintf("%s (%s:%s): version %q uses a property not defined in this POM; left out", dep.Field, g, a, raw)
	}
	if strings.ContainsAny(v, "[](),") {
		return "", "", fmt.Sprintf("%s (%s:%s): version range %q names no version; left out", dep.Field, g, a, v)
	}
	return g + ":" + a, v, ""
}

// resolvePomProps replaces ${name} references from props (properties may
// refer to others, up to a depth); ok is false when one is undefined.
func resolvePomProps(s string, props map[string]string) (string, bool) {
	s = strings.TrimSpace(s)
	for depth := 0; strings.Contains(s, "${"); depth++ {
		if depth >= 10 || len(s) > 4096 {
			return s, false
		}
		i := strings.Index(s, "${")
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return s, false
		}
		v, ok := props[s[i+2:i+j]]
		if !ok {
			return s, false
		}
		s = s[:i] + v + s[i+j+1:]
	}
	return s, true
}
