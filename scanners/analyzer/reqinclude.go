package analyzer

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Requirements is what a requirements file says beyond its pins: the
// files it includes (-r) and the constraints files it applies (-c), which
// Run follows among the files of the image (each analysed, and cached, on
// its own).
type Requirements struct {
	// Includes and Constraints are the -r and -c files as written
	// (relative to the file's directory, or absolute in the image).
	Includes, Constraints []string
	// Unpinned are the names required without a pinned version, which a
	// constraints file may pin.
	Unpinned []string
	// IncludedOnly marks a file that is not a requirements.txt
	// (base.txt, requirements/prod.txt, constraints.txt): its packages
	// are reported only when a requirements.txt includes it.
	IncludedOnly bool
}

// maxRequirementsDepth bounds how deep -r/-c includes are followed.
const maxRequirementsDepth = 8

// followRequirements follows the -r and -c options of every
// requirements.txt in files (the requirements results of the overlaid
// image, by path), depth-first, each file once per requirements.txt, only
// within the requirements.txt's directory tree and at most
// maxRequirementsDepth deep. It returns the packages of the included files
// that are not reported on their own, the constraints' pins of names the
// included files require unpinned, and warnings for what was not followed.
func followRequirements(files map[string]*Result) ([]Package, []string) {
	tops := make([]string, 0, len(files))
	for p, r := range files {
		if !r.Requirements.IncludedOnly {
			tops = append(tops, p)
		}
	}
	sort.Strings(tops)
	var pkgs []Package
	var warnings []string
	emitted := map[string]bool{}
	for _, top := range tops {
		root := path.Dir(top)
		visited := map[string]bool{top: true}
		pinned := map[string]bool{}
		var unpinned []string
		var constraints []string
		var walk func(file string, depth int)
		walk = func(file string, depth int) {
			r := files[file]
			for _, p := range r.Packages {
				pinned[normalizePythonName(p.Name)] = true
			}
			unpinned = append(unpinned, r.Requirements.Unpinned...)
			if r.Requirements.IncludedOnly && !emitted[file] {
				emitted[file] = true
				pkgs = append(pkgs, r.Packages...)
			}
			for _, inc := range []struct {
				opt   string
				files []string
			}{{"-r", r.Requirements.Includes}, {"-c", r.Requirements.Constraints}} {
				for _, f := range inc.files {
					target := f
					if strings.HasPrefix(target, "/") {
						target = path.Clean(strings.TrimPrefix(target, "/"))
					} else {
						target = path.Join(path.Dir(file), target)
					}
					switch {
					case root != "." && !strings.HasPrefix(target, root+"/"):
						warnings = append(warnings, fmt.Sprintf("%s: %s %s: outside %s/, not followed", file, inc.opt, f, root))
						continue
					case root == "." && (target == ".." || strings.HasPrefix(target, "../")):
						warnings = append(warnings, fmt.Sprintf("%s: %s %s: outside the image, not followed", file, inc.opt, f))
						continue
					case visited[target]:
						continue // a cycle, or a file included twice
					case files[target] == nil:
						warnings = append(warnings, fmt.Sprintf("%s: %s %s: no such requirements file in the image", file, inc.opt, f))
						continue
					case depth >= maxRequirementsDepth:
						warnings = append(warnings, fmt.Sprintf("%s: %s %s: includes nested more than %d deep, not followed", file, inc.opt, f, maxRequirementsDepth))
						continue
					}
					visited[target] = true
					if inc.opt == "-c" {
						constraints = append(constraints, target)
						continue
					}
					walk(target, depth+1)
				}
			}
		}
		walk(top, 0)
		// A constraints file pins the version of what is required
		// unpinned; what it names but nothing requires is not installed.
		want := map[string]bool{}
		for _, n := range unpinned {
			if k := normalizePythonName(n); !pinned[k] {
				want[k] = true
			}
		}
		for _, c := range constraints {
			for _, p := range files[c].Packages {
				k := normalizePythonName(p.Name)
				if want[k] && !emitted[c+"\x00"+k] {
					emitted[c+"\x00"+k] = true
					pkgs = append(pkgs, p)
				}
			}
		}
	}
	return pkgs, warnings
}
