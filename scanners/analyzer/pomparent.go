package analyzer

import (
	"fmt"
	"path"
	"strings"
)

// PomModel is what Run needs of a pom.xml to resolve its children's
// dependencies, and its own from its parents.
type PomModel struct {
	// GroupID, ArtifactID and Version are the POM's coordinates (group
	// and version inherited from <parent> when absent).
	GroupID, ArtifactID, Version string
	// ParentGroupID, ParentArtifactID and ParentVersion name the parent.
	ParentGroupID, ParentArtifactID, ParentVersion string
	// ParentPath is where the parent may be in the image, relative to
	// this POM's directory ("../pom.xml" by default, a directory means
	// its pom.xml); "" when there is no parent or <relativePath/> asks
	// for none.
	ParentPath string
	// Props are the POM's properties (with project.*, parent.*).
	Props map[string]string
	// Managed are dependencyManagement's versions by "group:artifact",
	// as written.
	Managed map[string]string
	// Unresolved are the dependencies this POM alone does not resolve.
	Unresolved []PomDep
}

// PomDep is one dependency as written.
type PomDep struct {
	Field, GroupID, ArtifactID, Version string
}

// maxPomParents bounds the parent chain followed.
const maxPomParents = 8

// pomParentPath is where a POM at p says its parent is, "" for none.
func pomParentPath(p string, m *PomModel) string {
	if m.ParentPath == "" {
		return ""
	}
	var target string
	if strings.HasPrefix(m.ParentPath, "/") {
		target = path.Clean(strings.TrimPrefix(m.ParentPath, "/"))
	} else {
		target = path.Join(path.Dir(p), m.ParentPath)
	}
	if target == "." || target == ".." || strings.HasPrefix(target, "../") {
		return ""
	}
	if !strings.HasSuffix(target, ".xml") {
		target = path.Join(target, "pom.xml")
	}
	return target
}

// resolvePomParents resolves the dependencies the POM at p left
// unresolved with its parents found in poms (the overlaid image's POMs by
// path): properties and dependencyManagement are inherited, the child's
// overriding its parents' (as Maven's model inheritance), for at most
// maxPomParents parents; a parent whose coordinates are not the ones the
// child names is not used (Maven would fetch the right one from a
// repository). It returns the packages resolved (located at loc) and a
// warning for each dependency still left out.
func resolvePomParents(p string, loc Location, poms map[string]*PomModel) ([]Package, []string) {
	m := poms[p]
	if m == nil || len(m.Unresolved) == 0 {
		return nil, nil
	}
	props := map[string]string{}
	managed := map[string]string{}
	var note string
	// the chain, nearest first
	chain := []*PomModel{m}
	seen := map[string]bool{p: true}
	for cur, curPath := m, p; ; {
		pp := pomParentPath(curPath, cur)
		if pp == "" {
			break
		}
		parent := poms[pp]
		want := cur.ParentGroupID + ":" + cur.ParentArtifactID + ":" + cur.ParentVersion
		switch {
		case seen[pp]:
			note = fmt.Sprintf(" (the parent chain loops at %s)", pp)
		case parent == nil:
			note = fmt.Sprintf(" (parent %s is not at %s in the image)", want, pp)
		case parent.GroupID+":"+parent.ArtifactID+":"+parent.Version != want:
			note = fmt.Sprintf(" (%s is %s:%s:%s, not the parent %s)", pp, parent.GroupID, parent.ArtifactID, parent.Version, want)
			parent = nil
		case len(chain) > maxPomParents:
			note = fmt.Sprintf(" (more than %d parents)", maxPomParents)
			parent = nil
		}
		if parent == nil || seen[pp] {
			break
		}
		seen[pp] = true
		chain = append(chain, parent)
		cur, curPath = parent, pp
	}
	// farthest first, so that nearer POMs override
	for i := len(chain) - 1; i >= 0; i-- {
		for k, v := range chain[i].Props {
			props[k] = v
		}
		for k, v := range chain[i].Managed {
			managed[k] = v
		}
	}
	// project.* are the child's own, whatever a parent's were
	for k, v := range m.Props {
		if strings.HasPrefix(k, "project.") || strings.HasPrefix(k, "pom.") || k == "version" {
			props[k] = v
		}
	}
	l := newPkgListAt(TypeMaven, loc)
	var warnings []string
	for _, d := range m.Unresolved {
		name, v, warning := resolvePomDep(d, props, managed)
		if warning != "" {
			warnings = append(warnings, p+": "+warning+note)
			continue
		}
		if err := l.add(name, v); err != nil {
			warnings = append(warnings, p+": "+err.Error())
			break
		}
	}
	return l.pkgs, warnings
}
