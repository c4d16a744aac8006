package analyzer

import (
	"context"
	pathpkg "path"
	"path/filepath"
	"testing"
)

// maxFuzzSeed bounds the seeds of the lock file fuzz targets (see
// fuzzManifest).
const maxFuzzSeed = 512

// fuzzManifest feeds a fuzzer's inputs to the analyzer that takes path,
// seeded with small documents of its format; the analyzer must never
// panic, and what it returns without an error must be well formed.
//
// The seeds are written out here, a few hundred bytes each, rather than
// read from the fixtures (which TestLanguageLockFiles parses): Go
// minimizes every new interesting input for up to -fuzzminimizetime (60 s)
// with candidates quadratic in its length, and inputs grown from
// kilobyte-sized seeds barely shrink, so each worker spent the run
// minimizing instead of fuzzing (FuzzCargoLock ran 7 inputs in 20 s,
// FuzzComposerLock 714). maxFuzzSeed keeps them small, and
// boundMinimize caps minimizing at 2 s an input unless the command line
// sets it: FuzzPomXML, whose broken-XML inputs hardly shrink, still ran 7
// inputs in 20 s with small seeds (fuzz sweep, 2026-12-04), and ~11,000
// with the cap.
func fuzzManifest(f *testing.F, a Analyzer, path string, seeds ...string) {
	boundMinimize(f)
	for _, s := range seeds {
		if len(s) > maxFuzzSeed {
			f.Fatalf("a seed of %d bytes: keep them under %d", len(s), maxFuzzSeed)
		}
	}
	info := fileInfo{name: filepath.Base(path), mode: 0o755}
	if !a.Required(path, info) {
		f.Fatalf("%s does not take %s", a.Type(), path)
	}
	for _, s := range seeds {
		// a seed the analyzer rejects would start the fuzzer nowhere
		if res, err := a.Analyze(context.Background(), Input{Path: path, Info: info, Content: []byte(s)}); err != nil || res == nil {
			f.Fatalf("seed %.60q: %v, %v", s, res, err)
		}
		f.Add([]byte(s))
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
	fuzzManifest(f, projectManifest{}, "app/package.json",
		`{"name":"app","dependencies":{"a":"^1.0.0"},"devDependencies":{"@s/b":"~2.0.0"},"optionalDependencies":{"c":"1"}}`)
}

func FuzzPyprojectManifest(f *testing.F) {
	fuzzManifest(f, projectManifest{}, "app/pyproject.toml",
		"[tool.poetry]\nname = \"app\"\n[tool.poetry.dependencies]\npython = \"^3.11\"\nrequests = \"^2.25\"\n[tool.poetry.group.dev.dependencies]\npytest = \"^7\"\n[tool.poetry.dev-dependencies]\nblack = \"*\"\n",
		"[project]\nname = \"app\"\ndependencies = [\"flask>=2\", \"idna==3.4 ; python_version>'3'\"]\n[project.optional-dependencies]\ntest = [\"pytest\"]\n")
}

func FuzzRequirementsTxt(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/requirements.txt",
		"# pinned\nrequests==2.25.1 \\\n    --hash=sha256:abc\nDjango[bcrypt]===4.2.4 ; python_version >= '3.8'\nflask>=2\n-e git+https://example.test/x.git#egg=x\n-c constraints.txt\n")
}

func FuzzRequirementsInclude(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/requirements/base.txt",
		"-r base.txt\n--constraint=c.txt\nflask\nrequests==2.25.1\n-rrequirements/x.txt\n",
		"--requirement ../common.txt\nidna==3.4\n")
}

func FuzzPoetryLock(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/poetry.lock",
		"[[package]]\nname = \"requests\"\nversion = \"2.25.1\"\ncategory = \"main\"\n\n[package.dependencies]\nidna = \">=2.5\"\n\n[[package]]\nname = \"idna\"\nversion = \"2.10\"\ncategory = \"dev\"\n",
		"[[package]]\nname = \"Flask\"\nversion = \"2.0.0\"\nfiles = []\n\n[package.dependencies]\nclick = {version = \">=7\", markers = \"x\"}\n\n[metadata]\nlock-version = \"2.0\"\n")
}

func FuzzPipfileLock(f *testing.F) {
	fuzzManifest(f, pythonLock{}, "app/Pipfile.lock",
		`{"_meta":{"pipfile-spec":6},"default":{"django":{"version":"==4.2.4","markers":"x"},"internal":{"git":"https://example.test/i.git"}},"develop":{"pytest":{"version":"==7.4.0"},"django":{"version":"==4.2.4"}}}`)
}

// FuzzYarnLock is seeded with small lock files (yarn 1, and yarn 2+ with an
// alias, a workspace and a patch).
func FuzzYarnLock(f *testing.F) {
	fuzzManifest(f, jsLock{}, "app/yarn.lock",
		"# yarn lockfile v1\n\n\n\"@s/a@^1.0.0\", a@~1.0.0:\n  version \"1.0.2\"\n  dependencies:\n    b \"^2.0.0\"\n\nb@^2.0.0:\n  version \"2.0.0\"\n",
		"__metadata:\n  version: 8\n\n\"a@npm:^1.0.0, x@npm:a@1.0.0\":\n  version: 1.0.0\n  resolution: \"a@npm:1.0.0\"\n  dependencies:\n    b: \"npm:^2.0.0\"\n  linkType: hard\n\n"+
			"\"b@npm:^2.0.0\":\n  version: 2.0.0\n  resolution: \"b@npm:2.0.0\"\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"app@workspace:.\"\n  linkType: soft\n\n"+
			"\"c@patch:c@npm%3A1.0.0#~/.yarn/patches/c.patch\":\n  version: 1.0.0\n  resolution: \"c@patch:c@npm%3A1.0.0#~/.yarn/patches/c.patch::version=1.0.0\"\n")
}

// FuzzPnpmLock is seeded with small lock files of each version (5.x, 6.x,
// 9.x with an alias, a peer suffix and a dev-only package).
func FuzzPnpmLock(f *testing.F) {
	fuzzManifest(f, jsLock{}, "app/pnpm-lock.yaml",
		"lockfileVersion: 5.4\npackages:\n  /a/1.0.0:\n    dependencies:\n      b: 2.0.0_c@1\n    dev: false\n  /b/2.0.0_c@1:\n    dev: true\n",
		"lockfileVersion: '6.0'\npackages:\n  /@s/a@1.0.0(c@1.0.0):\n    dev: false\n  /b@2.0.0:\n    name: b\n    version: 2.0.0\n    dev: true\n",
		"lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\n      a:\n        version: 1.0.0(c@1.0.0)\n      x:\n        version: npm:b@2.0.0\n    devDependencies:\n      d:\n        version: link:../d\npackages:\n  a@1.0.0:\n    resolution: {integrity: sha512-x}\nsnapshots:\n  a@1.0.0(c@1.0.0):\n    dependencies:\n      b: 2.0.0\n  b@2.0.0: {}\n")
}

func FuzzGemfileLock(f *testing.F) {
	fuzzManifest(f, gemLock{}, "app/Gemfile.lock",
		"GIT\n  remote: https://example.test/s.git\n  specs:\n    sprockets (4.2.0)\n      rack (>= 2.2.4, < 4)\n\nGEM\n  remote: https://rubygems.org/\n  specs:\n    rack (2.2.3)\n    nokogiri (1.11.1-x86_64-linux)\n      racc (~> 1.4)\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  rack\n\nBUNDLED WITH\n   2.2.3\n")
}

func FuzzGemspec(f *testing.F) {
	fuzzManifest(f, gemSpec{}, "usr/lib/ruby/gems/3.0.0/specifications/rack-2.2.3.gemspec",
		"# stub: rack 2.2.3 ruby lib\n\nGem::Specification.new do |s|\n  s.name = \"rack\".freeze\n  s.version = \"2.2.3\"\n  s.licenses = [\"MIT\".freeze]\nend\n")
}

func FuzzComposerLock(f *testing.F) {
	fuzzManifest(f, composerLock{}, "app/composer.lock",
		`{"packages":[{"name":"guzzlehttp/guzzle","version":"7.4.2","require":{"php":"^7.2"}},{"name":"psr/log","version":"v1.1.4"}],"packages-dev":[{"name":"phpunit/phpunit","version":"9.5.20"},{"name":"psr/log","version":"v1.1.4"}]}`)
}

func FuzzComposerInstalled(f *testing.F) {
	fuzzManifest(f, composerInstalled{}, "app/vendor/composer/installed.json",
		`{"packages":[{"name":"guzzlehttp/guzzle","version":"7.4.2","type":"library"},{"name":"phpunit/phpunit","version":"9.5.20"}],"dev":true,"dev-package-names":["phpunit/phpunit"]}`,
		`[{"name":"psr/log","version":"1.1.4"}]`)
}

func FuzzCargoLock(f *testing.F) {
	fuzzManifest(f, cargoLock{}, "app/Cargo.lock",
		"version = 3\n\n[[package]]\nname = \"log\"\nversion = \"0.4.14\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\ndependencies = [\n \"cfg-if\",\n]\n\n[[package]]\nname = \"shop\"\nversion = \"0.1.0\"\n")
}

func FuzzNuGetLock(f *testing.F) {
	fuzzManifest(f, nugetLock{}, "app/packages.lock.json",
		`{"version":1,"dependencies":{"net6.0":{"Newtonsoft.Json":{"type":"Direct","requested":"[12.0.3, )","resolved":"12.0.3"},"Shop.Core":{"type":"Project"},"Serilog":{"type":"Transitive","resolved":"2.10.0"}}}}`)
}

func FuzzDotnetDeps(f *testing.F) {
	fuzzManifest(f, dotnetDeps{}, "app/Shop.Api.deps.json",
		`{"targets":{".NETCoreApp,Version=v6.0":{"Shop.Api/1.0.0":{"dependencies":{"Newtonsoft.Json":"12.0.3"}},"Newtonsoft.Json/12.0.3":{}}},"libraries":{"Shop.Api/1.0.0":{"type":"project"},"Newtonsoft.Json/12.0.3":{"type":"package","serviceable":true}}}`)
}

func FuzzGradleLock(f *testing.F) {
	fuzzManifest(f, gradleLock{}, "app/gradle.lockfile",
		"# This is a Gradle generated file for dependency locking.\ncom.fasterxml.jackson.core:jackson-core:2.12.3=compileClasspath,runtimeClasspath\norg.yaml:snakeyaml:1.28=testRuntimeClasspath\nempty=annotationProcessor\n")
}

func FuzzPomXML(f *testing.F) {
	// a module whose parent is at the default ../pom.xml
	f.Add(testPom(":api:", "x:parent:1", "-", "<v>1.0</v>", dep("g", "m", "${v}"), dep("g", "m", "")+dep("g", "n", "${w}")))
	fuzzManifest(f, pomFile{}, "app/pom.xml",
		"<project><groupId>g</groupId><artifactId>a</artifactId><version>1</version><properties><l>2.14.1</l></properties>"+
			"<dependencyManagement><dependencies><dependency><groupId>j</groupId><artifactId>d</artifactId><version>2.12.3</version></dependency></dependencies></dependencyManagement>"+
			"<dependencies><dependency><groupId>o</groupId><artifactId>c</artifactId><version>${l}</version></dependency><dependency><groupId>j</groupId><artifactId>d</artifactId></dependency></dependencies></project>")
}
