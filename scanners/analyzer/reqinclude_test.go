package analyzer

import (
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// reqTree is a requirements.txt that includes a file that includes
// another (which includes the first back: a cycle), applies a constraints
// file to two unpinned requirements, and a requirements-dev.txt nothing
// includes.
var reqTree = map[string][]byte{
	"srv/app/requirements.txt":            []byte("-r requirements/base.txt\n--constraint constraints.txt\nflask\nrequests==2.25.1\n"),
	"srv/app/requirements/base.txt":       []byte("--requirement=common.txt\nPyYAML==5.3.1  # pinned here\nurllib3>=1.26\n"),
	"srv/app/requirements/common.txt":     []byte("-r ../requirements.txt\nidna==2.10\n"),
	"srv/app/constraints.txt":             []byte("flask==1.1.2\nurllib3==1.26.4\njinja2==2.11.2\n"),
	"srv/app/requirements-dev.txt":        []byte("-r requirements.txt\npytest==7.4.0\n"),
	"srv/other/requirements/leftover.txt": []byte("six==1.15.0\n"),
}

// reqFound lists "name@version path" of the Python packages found.
func reqFound(inv *Inventory) []string {
	var out []string
	for _, p := range inv.Packages {
		if p.Type == TypePython {
			out = append(out, p.Name+"@"+p.Version+" "+p.Location.Path)
		}
	}
	sort.Strings(out)
	return out
}

// TestRequirementsIncludes: -r files are followed (their pins reported at
// their own path), a cycle ends, a -c file pins what is required unpinned
// (and nothing else), files no requirements.txt includes are not reported.
func TestRequirementsIncludes(t *testing.T) {
	inv := runLockfilesOnFiles(t, reqTree, false)
	want := []string{
		"PyYAML@5.3.1 srv/app/requirements/base.txt",
		"flask@1.1.2 srv/app/constraints.txt",
		"idna@2.10 srv/app/requirements/common.txt",
		"requests@2.25.1 srv/app/requirements.txt",
		"urllib3@1.26.4 srv/app/constraints.txt",
	}
	if got := reqFound(inv); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings %q", inv.Warnings)
	}
}

// TestRequirementsIncludesAgainstPip has pip's own requirements parser
// (Debian's python3-pip, offline) read reqTree and checks that what it
// pins (== requirements, and constraints of unpinned requirements) is what
// Run reports. pip follows a cycle until the path is too long for the
// file system, so its tree has none.
func TestRequirementsIncludesAgainstPip(t *testing.T) {
	tree := map[string][]byte{}
	for k, v := range reqTree {
		tree[k] = v
	}
	tree["srv/app/requirements/common.txt"] = []byte("idna==2.10\n")
	python := testenv.LookPath(t, "python3", "python3")
	if err := exec.Command(python, "-c", "import pip._internal.req.req_file").Run(); err != nil {
		testenv.Skip(t, "pip's parser: %v (is python3-pip installed?)", err)
	}
	root := t.TempDir()
	scantest.WriteFiles(t, root, tree)
	out := run(t, filepath.Join(root, "srv", "app"), nil, python, "-c", `
import sys
from pip._internal.network.session import PipSession
from pip._internal.req.req_file import parse_requirements
for r in parse_requirements("requirements.txt", session=PipSession()):
    print(("C" if r.constraint else "R") + "\t" + r.requirement)
`)
	pinned := map[string]string{}
	var unpinned []string
	constraints := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		kind, req, _ := strings.Cut(line, "\t")
		if n, v, ok := parseRequirementLine(req); ok {
			if kind == "C" {
				constraints[normalizePythonName(n)] = n + "@" + v
			} else {
				pinned[normalizePythonName(n)] = n + "@" + v
			}
		} else if n := unpinnedRequirement(req); n != "" && kind == "R" {
			unpinned = append(unpinned, normalizePythonName(n))
		}
	}
	for _, n := range unpinned {
		if _, ok := pinned[n]; !ok && constraints[n] != "" {
			pinned[n] = constraints[n]
		}
	}
	var want []string
	for _, v := range pinned {
		want = append(want, v)
	}
	sort.Strings(want)
	var got []string
	for _, s := range reqFound(runLockfilesOnFiles(t, tree, false)) {
		got = append(got, strings.Fields(s)[0])
	}
	if len(want) != 5 || !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, pip pins %q\n(pip: %s)", got, want, out)
	}
}

// TestRequirementsIncludeBounds: includes outside the requirements.txt's
// tree, missing ones and ones nested too deep are not followed, and a
// warning names each.
func TestRequirementsIncludeBounds(t *testing.T) {
	files := map[string][]byte{
		"srv/app/requirements.txt":           []byte("-r ../shared/requirements-common.txt\n-r /etc/requirements-extra.txt\n-c missing-constraints.txt\n-r deep/requirements-0.txt\nrequests==2.25.1\n"),
		"srv/shared/requirements-common.txt": []byte("six==1.15.0\n"),
		"etc/requirements-extra.txt":         []byte("idna==2.10\n"),
	}
	for i := 0; i <= maxRequirementsDepth; i++ {
		next := ""
		if i < maxRequirementsDepth {
			next = "-r requirements-" + string(rune('0'+i+1)) + ".txt\n"
		}
		files["srv/app/deep/requirements-"+string(rune('0'+i))+".txt"] = []byte(next + "pkg" + string(rune('a'+i)) + "==1.0\n")
	}
	inv := runLockfilesOnFiles(t, files, false)
	got := reqFound(inv)
	if len(got) != 1+maxRequirementsDepth || got[len(got)-1] != "requests@2.25.1 srv/app/requirements.txt" {
		t.Errorf("packages %q: want requests and %d of the nested files", got, maxRequirementsDepth)
	}
	for _, w := range []string{
		"srv/app/requirements.txt: -r ../shared/requirements-common.txt: outside srv/app/",
		"srv/app/requirements.txt: -r /etc/requirements-extra.txt: outside srv/app/",
		"srv/app/requirements.txt: -c missing-constraints.txt: no such requirements file",
		"-r requirements-8.txt: includes nested more than 8 deep",
	} {
		found := false
		for _, iw := range inv.Warnings {
			found = found || strings.Contains(iw, w)
		}
		if !found {
			t.Errorf("no warning %q in %q", w, inv.Warnings)
		}
	}
}
