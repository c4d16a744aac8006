package analyzer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// analyzeFixture runs the analyzer that requires the fixture (exactly one
// of all analyzers and lock file analyzers must) and returns what it found.
func analyzeFixture(t *testing.T, rel string) *Result {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "lockfiles", rel))
	if err != nil {
		t.Fatal(err)
	}
	p := "srv/app/" + rel
	info := fileInfo{name: filepath.Base(rel), size: int64(len(b)), mode: 0o644}
	var wanted []Analyzer
	for _, a := range append(All(), Lockfiles()...) {
		if a.Required(p, info) {
			wanted = append(wanted, a)
		}
	}
	if len(wanted) != 1 {
		t.Fatalf("%s: %d analyzers want it, want 1", p, len(wanted))
	}
	res, err := wanted[0].Analyze(context.Background(), Input{Path: p, Layer: "sha256:l1", Info: info, Content: b})
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	for _, pkg := range res.Packages {
		if pkg.Location.Path != p || pkg.Location.Layer != "sha256:l1" {
			t.Errorf("%s: package %s has location %+v", p, pkg.Name, pkg.Location)
		}
	}
	return res
}

func typedNames(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		s := p.Type + " " + p.Name + "@" + p.Version
		if p.Dev {
			s += " (dev)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// pnpmProd is the production dependency tree of the JS fixtures (made by
// pnpm 7, 8, 9 and yarn 1 and 4 from one package.json): the three
// dependencies and what they pull in; left-pad is a dev dependency.
var pnpmProd = []string{
	"npm @babel/code-frame@7.12.13",
	"npm @babel/helper-validator-identifier@7.29.7",
	"npm @babel/highlight@7.25.9",
	"npm ansi-styles@3.2.1",
	"npm chalk@2.4.2",
	"npm color-convert@1.9.3",
	"npm color-name@1.1.3",
	"npm escape-string-regexp@1.0.5",
	"npm has-flag@3.0.0",
	"npm js-tokens@4.0.0",
	"npm lodash@4.17.20",
	"npm minimist@1.2.5",
	"npm picocolors@1.1.1",
	"npm supports-color@5.5.0",
}

func TestLanguageLockFiles(t *testing.T) {
	withLeftPad := append(append([]string(nil), pnpmProd...), "npm left-pad@1.3.0")
	sort.Strings(withLeftPad)
	devLeftPad := append(append([]string(nil), pnpmProd...), "npm left-pad@1.3.0 (dev)")
	sort.Strings(devLeftPad)
	tests := []struct {
		fixture  string
		want     []string
		warnings []string
	}{
		// JavaScript, written by the tools themselves (see testdata/lockfiles/README.md).
		{"yarn-v1/yarn.lock", withLeftPad, nil},
		{"yarn-berry/yarn.lock", withLeftPad, nil},
		{"pnpm-v5/pnpm-lock.yaml", devLeftPad, nil},
		{"pnpm-v6/pnpm-lock.yaml", devLeftPad, nil},
		{"pnpm-v9/pnpm-lock.yaml", devLeftPad, nil},
		// Python.
		{"python/requirements.txt", []string{
			"python PyYAML@5.3.1", "python certifi@2020.12.5", "python chardet@4.0.0",
			"python idna@2.10", "python requests@2.25.1", "python urllib3@1.26.4",
		}, nil},
		{"python/poetry.lock", []string{"python certifi@2023.7.22", "python requests@2.31.0", "python typing-extensions@4.7.1"}, nil},
		{"python/poetry-v1/poetry.lock", []string{"python pytest@6.2.2 (dev)", "python pyyaml@5.3.1"}, nil},
		{"python/Pipfile.lock", []string{"python django@4.2.4", "python pytest@7.4.0 (dev)", "python requests@2.25.1"}, nil},
		// Ruby.
		{"ruby/Gemfile.lock", []string{
			"gem concurrent-ruby@1.1.8", "gem mini_portile2@2.5.0", "gem nokogiri@1.11.1",
			"gem racc@1.5.2", "gem rack-test@1.1.0", "gem rack@2.2.3", "gem sprockets@4.2.0",
		}, nil},
		{"ruby/specifications/rack-2.2.3.gemspec", []string{"gem rack@2.2.3"}, nil},
		// PHP.
		{"php/composer.lock", []string{"composer guzzlehttp/guzzle@7.4.2", "composer guzzlehttp/promises@1.5.1", "composer phpunit/phpunit@9.5.20 (dev)", "composer symfony/http-foundation@v5.4.8"}, nil},
		{"php/vendor/composer/installed.json", []string{"composer guzzlehttp/guzzle@7.4.2", "composer phpunit/phpunit@9.5.20"}, nil},
		// Rust.
		{"rust/Cargo.lock", []string{"cargo cfg-if@1.0.0", "cargo log@0.4.14", "cargo smallvec@1.6.0"}, nil},
		// .NET.
		{"dotnet/packages.lock.json", []string{"nuget Newtonsoft.Json@12.0.3", "nuget Serilog@2.10.0", "nuget System.Text.Encodings.Web@4.7.2"}, nil},
		{"dotnet/Shop.Api.deps.json", []string{"nuget Newtonsoft.Json@12.0.3"}, nil},
		// Java.
		{"java/gradle.lockfile", []string{
			"maven com.fasterxml.jackson.core:jackson-annotations@2.12.3", "maven com.fasterxml.jackson.core:jackson-core@2.12.3",
			"maven com.fasterxml.jackson.core:jackson-databind@2.12.3", "maven org.apache.logging.log4j:log4j-api@2.14.1",
			"maven org.apache.logging.log4j:log4j-core@2.14.1",
		}, nil},
		{"java/pom.xml", []string{
			"maven com.example.shop:shop-core@1.4.0", "maven com.fasterxml.jackson.core:jackson-databind@2.12.3",
			"maven org.apache.logging.log4j:log4j-core@2.14.1",
		}, []string{
			"dependency[1] (org.springframework.boot:spring-boot-starter-web): no version declared",
			"dependency[5] (io.netty:netty-codec-http): version \"${netty.version}\" uses a property not defined",
			"dependency[6] (com.google.guava:guava): version range \"[30.0-jre,)\"",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			res := analyzeFixture(t, tt.fixture)
			if got := typedNames(res.Packages); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n got %q\nwant %q", got, tt.want)
			}
			if len(res.Warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %d", res.Warnings, len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if !strings.Contains(res.Warnings[i], w) || !strings.Contains(res.Warnings[i], "srv/app/"+tt.fixture) {
					t.Errorf("warning %d = %q, want it to name the file and say %q", i, res.Warnings[i], w)
				}
			}
		})
	}
}

// TestRequirementsLines checks pip's line syntax: CRLF continuations,
// comments, markers, options, extras and what pins nothing.
func TestRequirementsLines(t *testing.T) {
	content := "Django==4.2.4 \\\r\n    --hash=sha256:abc\r\n" +
		"flask==2.0.1#not-a-comment\n" + // pip: not a comment, and no version
		"zope.interface===5.4.0 ; python_version < '3.12' # pinned\n" +
		"  # only a comment\n" +
		"uvicorn[standard] == 0.22.0\n" +
		"-c constraints.txt\n" +
		"numpy~=1.24\n" +
		"scipy!=1.10.0\n" +
		"torch==2.0.0+cpu\n" +
		"pkg==\n"
	res, err := parseRequirements(Input{Path: "app/requirements.txt", Content: []byte(content)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"python Django@4.2.4", "python torch@2.0.0+cpu", "python uvicorn@0.22.0", "python zope.interface@5.4.0"}
	if got := typedNames(res.Packages); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestLanguageLockFileErrors checks that broken files are errors that name
// the file and the line or field at fault.
func TestLanguageLockFileErrors(t *testing.T) {
	tests := []struct {
		path, content string
		want          string
	}{
		{"app/yarn.lock", "# yarn lockfile v1\n\nlodash@^4.17.20:\n  resolved \"x\"\n\nminimist@^1.2.5:\n  version \"1.2.5\"\n", "app/yarn.lock: line 3: entry \"lodash\" has no version"},
		{"app/yarn.lock", "# yarn lockfile v1\n\nlodash@^4.17.20\n  version \"4.17.20\"\n", "line 3: entry header"},
		{"app/yarn.lock", "__metadata:\n  version: 8\n\"lodash@npm:^4\":\n  version: [\n", "app/yarn.lock: yarn berry lock:"},
		{"app/pnpm-lock.yaml", "lockfileVersion: '3.0'\n", "lockfileVersion \"3.0\""},
		{"app/pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages:\n  a@1: {\n", "app/pnpm-lock.yaml: pnpm lock: [3:"},
		{"app/poetry.lock", "[[package]]\nname = \"requests\"\nversion = 2.31.0\n", "app/poetry.lock: line 3"},
		{"app/poetry.lock", "[[package]]\nname = \"requests\"\n", "package 1: no name or version"},
		{"app/Pipfile.lock", "{\n  \"default\": {\n    \"requests\": {\"version\": 2}\n  }\n}\n", "app/Pipfile.lock: line 3: field \"default.version\""},
		{"app/Pipfile.lock", "{\n  \"default\": {,\n}", "app/Pipfile.lock: line 2:"},
		{"app/Gemfile.lock", "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack 2.2.3\n", "app/Gemfile.lock: line 4: spec \"rack 2.2.3\""},
		{"app/composer.lock", "{\"packages\": [{\"name\": \"a/b\"}]}", "app/composer.lock: packages[0]: no name or version"},
		{"app/Cargo.lock", "[[package]]\nname = \"log\"\nversion = \"0.4.14\"\nsource = \n", "app/Cargo.lock: line 4"},
		{"app/packages.lock.json", "{\"version\": 1, \"dependencies\": {\"net6.0\": {\"A\": {\"type\": \"Direct\"}}}}", "dependencies.net6.0.A: no resolved version"},
		{"app/packages.lock.json", "{\"version\": 7}", "version 7: want 1 or 2"},
		{"app/gradle.lockfile", "# x\ncom.example:only-two=runtimeClasspath\n", "app/gradle.lockfile: line 2:"},
		{"app/pom.xml", "<project>\n  <dependencies>\n    <dependency>\n  </dependencies>\n</project>\n", "app/pom.xml: line 4:"},
		{"app/pom.xml", "<?xml version=\"1.0\" encoding=\"EBCDIC\"?><project/>", "encoding \"EBCDIC\" is not supported"},
		{"app/x.deps.json", "{\"libraries\": {\"Foo\": {\"type\": \"package\"}}}", "key \"Foo\": want Name/Version"},
		{"app/specifications/x-1.gemspec", "Gem::Specification.new do |s|\nend\n", "no name or version"},
		{"app/vendor/composer/installed.json", "[{\"name\": 1}]", "app/vendor/composer/installed.json: line 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.want, func(t *testing.T) {
			info := fileInfo{name: filepath.Base(tt.path), size: int64(len(tt.content)), mode: 0o644}
			var err error
			n := 0
			for _, a := range append(All(), Lockfiles()...) {
				if a.Required(tt.path, info) {
					n++
					_, err = a.Analyze(context.Background(), Input{Path: tt.path, Info: info, Content: []byte(tt.content)})
				}
			}
			if n != 1 {
				t.Fatalf("%d analyzers want %s", n, tt.path)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("err = %v, want it to name %s and say %q", err, tt.path, tt.want)
			}
		})
	}
}

// TestLanguageLockFileBounds checks the size bound of every parser.
func TestLanguageLockFileBounds(t *testing.T) {
	big := make([]byte, maxManifestSize+1)
	for _, name := range []string{"requirements.txt", "poetry.lock", "Pipfile.lock", "yarn.lock", "pnpm-lock.yaml", "Gemfile.lock", "composer.lock", "Cargo.lock", "packages.lock.json", "gradle.lockfile", "pom.xml"} {
		p := "app/" + name
		var a Analyzer
		for _, x := range Lockfiles() {
			if x.Required(p, fileInfo{name: name}) {
				a = x
			}
		}
		if a == nil {
			t.Fatalf("no analyzer for %s", name)
		}
		_, err := a.Analyze(context.Background(), Input{Path: p, Content: big})
		if !errors.Is(err, errTooLarge) {
			t.Errorf("%s: err = %v, want errTooLarge", name, err)
		}
	}
}

// TestLanguageLockFileRequired checks which paths the lock file analyzers
// take: not the copies inside installed dependencies.
func TestLanguageLockFileRequired(t *testing.T) {
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"srv/app/yarn.lock", true},
		{"srv/app/node_modules/x/yarn.lock", false},
		{"srv/app/vendor/bundle/ruby/3.0.0/gems/rack-2.2.3/Gemfile.lock", false},
		{"srv/app/Gemfile.lock", true},
		{"usr/lib/python3/dist-packages/x/requirements.txt", false},
		{"srv/app/requirements.txt", true},
		{"srv/app/requirements-dev.txt", true}, // read, reported only when a requirements.txt includes it
		{"srv/app/notes.txt", false},
		{"srv/app/requirements/prod.txt", true},
		{"srv/app/pom.xml", true},
		{"srv/app/META-INF/maven/g/a/pom.xml", false},
		{"root/.m2/repository/g/a/1/a-1.pom", false},
		{"srv/app/Cargo.lock", true},
		{"root/.cargo/registry/src/x/Cargo.lock", false},
	} {
		got := false
		for _, a := range Lockfiles() {
			got = got || a.Required(tt.path, fileInfo{name: filepath.Base(tt.path)})
		}
		if got != tt.want {
			t.Errorf("Required(%s) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestLockDevThenProdRepeats: a lock file that lists every package twice,
// first for development and then for production (hostile: poetry.lock
// categories, Pipfile.lock sections), made each repeat search the whole
// list, so a 10 MB file took hours. Each repeat now costs a map lookup:
// the allocations stay linear in the packages (the search allocated two
// string per package per repeat: 4 million here).
func TestLockDevThenProdRepeats(t *testing.T) {
	const n = 2000
	var b strings.Builder
	for _, category := range []string{"dev", "main"} {
		for i := range n {
			// names long enough that the search's concatenations were on the heap
			fmt.Fprintf(&b, "[[package]]\nname = \"a-package-with-a-long-name-%d\"\nversion = \"1.0.%d\"\ncategory = %q\n\n", i, i, category)
		}
	}
	in := Input{Path: "app/poetry.lock", Content: []byte(b.String())}
	res, err := pythonLock{}.Analyze(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != n {
		t.Fatalf("%d packages, want %d", len(res.Packages), n)
	}
	for _, p := range res.Packages {
		if p.Dev {
			t.Fatalf("%s@%s is listed for production too, but kept as dev", p.Name, p.Version)
		}
	}
	allocs := testing.AllocsPerRun(1, func() {
		if _, err := (pythonLock{}).Analyze(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	})
	if max := float64(200 * 2 * n); allocs > max {
		t.Errorf("%.0f allocations for %d package entries, want at most %.0f (linear)", allocs, 2*n, max)
	}
}
