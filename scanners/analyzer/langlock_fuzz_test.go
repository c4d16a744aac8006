package analyzer

import (
	"context"
	"os"
	pathpkg "path"
	"path/filepath"
	"testing"
)

// fuzzManifest feeds a fuzzer's inputs to the analyzer that takes path,
// seeded with the fixtures; the analyzer must never panic, and what it
// returns without an error must be well formed.
func fuzzManifest(f *testing.F, a Analyzer, path string, seeds ...string) {
	for _, s := range seeds {
		b, err := os.ReadFile(filepath.Join("testdata", "lockfiles", s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	info := fileInfo{name: filepath.Base(path), mode: 0o755}
	if !a.Required(path, info) {
		f.Fatalf("%s does not take %s", a.Type(), path)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := a.Analyze(context.Background(), Input{Path: path, Info: info, Content: b})
		if err != nil || res == nil {
			return
		}
		for _, p := range res.Packages {
			if p.Name == "" || p.Version == "" || p.Location.Path != path {
				t.Fatalf("malformed package %+v", p)
			}
		}
		if res.Requirements != nil {
			// follow its includes among itself and a second copy
			other := *res
			other.Requirements = &Requirements{IncludedOnly: true, Includes: res.Requirements.Includes}
			followRequirements(map[string]*Result{path: res, pathpkg.Join(pathpkg.Dir(path), "base.txt"): &other})
		}
		if m := res.Pom; m != nil {
			// the POM as its own parent, wherever it says that is
			poms := map[string]*PomModel{path: m}
			if pp := pomParentPath(path, m); pp != "" {
				poms[pp] = m
			}
			pkgs, _ := resolvePomParents(path, Location{Path: path}, poms)
			for _, p := range pkgs {
				if p.Name == "" || p.Version == "" {
					t.Fatalf("malformed package from the parents %+v", p)
				}
			}
		}
		if g := res.Graph; g != nil {
			for k, i := range g.Keys {
				if i < 0 || i >= len(g.Nodes) {
					t.Fatalf("key %q points at node %d of %d", k, i, len(g.Nodes))
				}
			}
			// join it with a manifest naming every package: no panic, no package lost
			m := &Manifest{}
			for _, p := range res.Packages {
				m.Deps = append(m.Deps, ManifestDep{Name: p.Name, Range: p.Version})
			}
			pkgs, warns := markDevPackages(path, res, map[string]*Manifest{pathpkg.Join(pathpkg.Dir(path), g.Manifest): m})
			if len(pkgs) != len(res.Packages) || len(warns) != 0 {
				t.Fatalf("markDevPackages: %d packages of %d, warnings %q", len(pkgs), len(res.Packages), warns)
			}
		}
	})
}

func FuzzPackageJSONManifest(f *testing.F) {
	fuzzManifest(f, projectManifest{}, "app/package.json", "yarn-v1-dev/package.json", "yarn-berry-dev/package.json")
}

func FuzzPyprojectManifest(f *testing.F) {
	fuzzManifest(f, projectManifest{}, "app/pyproject.toml", "python/poetry-groups/pyproject.toml")
}

func FuzzRequirementsTxt(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/requirements.txt", "python/requirements.txt")
}

func FuzzRequirementsInclude(f *testing.F) {
	f.Add([]byte("-r base.txt\n--constraint=c.txt\nflask\nrequests==2.25.1\n-rrequirements/x.txt\n"))
	fuzzManifest(f, pythonLock{}, "app/requirements/base.txt", "python/requirements.txt")
}

func FuzzPoetryLock(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/poetry.lock", "python/poetry.lock", "python/poetry-v1/poetry.lock", "python/poetry-groups/poetry.lock")
}

func FuzzPipfileLock(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/Pipfile.lock", "python/Pipfile.lock")
}

// FuzzYarnLock is seeded with small lock files (yarn 1, and yarn 2+ with an
// alias, a workspace and a patch) for the reason FuzzPnpmLock is.
func FuzzYarnLock(f *testing.F) {
	for _, s := range []string{
		"# yarn lockfile v1\n\n\n\"@s/a@^1.0.0\", a@~1.0.0:\n  version \"1.0.2\"\n  dependencies:\n    b \"^2.0.0\"\n\nb@^2.0.0:\n  version \"2.0.0\"\n",
		"__metadata:\n  version: 8\n\n\"a@npm:^1.0.0, x@npm:a@1.0.0\":\n  version: 1.0.0\n  resolution: \"a@npm:1.0.0\"\n  dependencies:\n    b: \"npm:^2.0.0\"\n  linkType: hard\n\n" +
			"\"b@npm:^2.0.0\":\n  version: 2.0.0\n  resolution: \"b@npm:2.0.0\"\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"app@workspace:.\"\n  linkType: soft\n\n" +
			"\"c@patch:c@npm%3A1.0.0#~/.yarn/patches/c.patch\":\n  version: 1.0.0\n  resolution: \"c@patch:c@npm%3A1.0.0#~/.yarn/patches/c.patch::version=1.0.0\"\n",
	} {
		f.Add([]byte(s))
	}
	fuzzManifest(f, jsLock{}, "app/yarn.lock")
}

// FuzzPnpmLock is seeded with small lock files of each version (5.x, 6.x,
// 9.x with an alias, a peer suffix and a dev-only package) rather than the
// fixtures: Go minimizes every new interesting input for up to
// -fuzzminimizetime (60 s) with O(n²) candidates, and YAML inputs barely
// shrink, so multi-KB seeds kept each worker minimizing instead of fuzzing
// (the exec rate fell to 0/s). The fixtures are parsed by TestLockfiles.
func FuzzPnpmLock(f *testing.F) {
	for _, s := range []string{
		"lockfileVersion: 5.4\npackages:\n  /a/1.0.0:\n    dependencies:\n      b: 2.0.0_c@1\n    dev: false\n  /b/2.0.0_c@1:\n    dev: true\n",
		"lockfileVersion: '6.0'\npackages:\n  /@s/a@1.0.0(c@1.0.0):\n    dev: false\n  /b@2.0.0:\n    name: b\n    version: 2.0.0\n    dev: true\n",
		"lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\n      a:\n        version: 1.0.0(c@1.0.0)\n      x:\n        version: npm:b@2.0.0\n    devDependencies:\n      d:\n        version: link:../d\npackages:\n  a@1.0.0:\n    resolution: {integrity: sha512-x}\nsnapshots:\n  a@1.0.0(c@1.0.0):\n    dependencies:\n      b: 2.0.0\n  b@2.0.0: {}\n",
	} {
		f.Add([]byte(s))
	}
	fuzzManifest(f, jsLock{}, "app/pnpm-lock.yaml")
}

func FuzzGemfileLock(f *testing.F) {
	fuzzManifest(f, gemLock{}, "app/Gemfile.lock", "ruby/Gemfile.lock")
}

func FuzzGemspec(f *testing.F) {
	fuzzManifest(f, gemSpec{}, "usr/lib/ruby/gems/3.0.0/specifications/rack-2.2.3.gemspec", "ruby/specifications/rack-2.2.3.gemspec")
}

func FuzzComposerLock(f *testing.F) {
	fuzzManifest(f, composerLock{}, "app/composer.lock", "php/composer.lock")
}

func FuzzComposerInstalled(f *testing.F) {
	fuzzManifest(f, composerInstalled{}, "app/vendor/composer/installed.json", "php/vendor/composer/installed.json")
}

func FuzzCargoLock(f *testing.F) {
	fuzzManifest(f, cargoLock{}, "app/Cargo.lock", "rust/Cargo.lock")
}

func FuzzNuGetLock(f *testing.F) {
	fuzzManifest(f, nugetLock{}, "app/packages.lock.json", "dotnet/packages.lock.json")
}

func FuzzDotnetDeps(f *testing.F) {
	fuzzManifest(f, dotnetDeps{}, "app/Shop.Api.deps.json", "dotnet/Shop.Api.deps.json")
}

func FuzzGradleLock(f *testing.F) {
	fuzzManifest(f, gradleLock{}, "app/gradle.lockfile", "java/gradle.lockfile")
}

func FuzzPomXML(f *testing.F) {
	// a module whose parent is at the default ../pom.xml
	f.Add(testPom(":api:", "x:parent:1", "-", "<v>1.0</v>", dep("g", "m", "${v}"), dep("g", "m", "")+dep("g", "n", "${w}")))
	fuzzManifest(f, pomFile{}, "app/pom.xml", "java/pom.xml")
}
