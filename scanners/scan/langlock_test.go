package scan

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// openLanguageDB builds a DB from the shared corpus plus the language
// advisories under scanners/vulndb/testdata (real GHSA records).
func openLanguageDB(t *testing.T) *vulndb.DB {
	t.Helper()
	src := t.TempDir()
	link := func(from, name string) {
		if err := os.Symlink(from, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go-osv", "ghsa-npm", "debian-bookworm"} {
		link(filepath.Join(advisoriesDir(t), f), f)
	}
	lang, err := filepath.Abs(filepath.Join("..", "vulndb", "testdata", "advisories"))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := filepath.Glob(filepath.Join(lang, "ghsa-*"))
	if err != nil || len(dirs) != 6 {
		t.Fatalf("language advisories: %q %v", dirs, err)
	}
	for _, d := range dirs {
		link(d, filepath.Base(d))
	}
	dir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dir, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixture reads a lock file fixture of the analyzer package.
func fixture(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "analyzer", "testdata", "lockfiles", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// auditableBinary returns an executable with a cargo-auditable dependency
// list (an ELF ".dep-v0" section of zlib-compressed JSON) naming crates at
// the given versions, made with objcopy from the system's true(1).
func auditableBinary(t *testing.T, crates map[string]string) []byte {
	t.Helper()
	objcopy := testenv.LookPath(t, "objcopy", "binutils")
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	// The layout cargo-auditable writes: the root crate first, its
	// dependencies by index; a build-time dependency is not linked in.
	js := `{"packages":[{"name":"rustapp","version":"0.1.0","source":"local","dependencies":[1,2,3],"root":true}`
	names := make([]string, 0, len(crates))
	for n := range crates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		js += `,{"name":"` + n + `","version":"` + crates[n] + `","source":"crates.io"}`
	}
	js += `,{"name":"cc","version":"1.0.73","source":"crates.io","kind":"build"}]}`
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(js))
	zw.Close()
	dir := t.TempDir()
	sec, out := filepath.Join(dir, "dep-v0"), filepath.Join(dir, "rustapp")
	if err := os.WriteFile(sec, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(objcopy, "--add-section", ".dep-v0="+sec, "--set-section-flags", ".dep-v0=noload,readonly", trueBin, out).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLanguageEcosystemsCrossCheck builds an image with an application per
// ecosystem (lock files, manifests and installed metadata) and, beside
// each, a benign twin whose versions fix the advisories; serves it from a
// loopback registry, scans it with --lockfiles' analyzers against a DB of
// real advisories, and checks every finding against what the advisories
// say (IDs and fixed versions read from the records by hand, see
// scanners/vulndb/testdata/advisories/README.md).
func TestLanguageEcosystemsCrossCheck(t *testing.T) {
	db := openLanguageDB(t)
	vulnerable := t.TempDir()
	scantest.WriteFiles(t, vulnerable, map[string][]byte{
		"srv/py/pip/requirements.txt":                        fixture(t, "python/requirements.txt"),
		"srv/py/pipenv/Pipfile.lock":                         fixture(t, "python/Pipfile.lock"),
		"srv/py/poetry/poetry.lock":                          fixture(t, "python/poetry-v1/poetry.lock"),
		"srv/js/yarn/yarn.lock":                              fixture(t, "yarn-v1/yarn.lock"),
		"srv/js/berry/yarn.lock":                             fixture(t, "yarn-berry/yarn.lock"),
		"srv/js/pnpm/pnpm-lock.yaml":                         fixture(t, "pnpm-v9/pnpm-lock.yaml"),
		"srv/rb/Gemfile.lock":                                fixture(t, "ruby/Gemfile.lock"),
		"usr/local/bundle/specifications/rack-2.2.3.gemspec": fixture(t, "ruby/specifications/rack-2.2.3.gemspec"),
		"srv/php/composer.lock":                              fixture(t, "php/composer.lock"),
		"srv/php/vendor/composer/installed.json":             fixture(t, "php/vendor/composer/installed.json"),
		"srv/rs/Cargo.lock":                                  fixture(t, "rust/Cargo.lock"),
		"srv/cs/packages.lock.json":                          fixture(t, "dotnet/packages.lock.json"),
		"app/Shop.Api.deps.json":                             fixture(t, "dotnet/Shop.Api.deps.json"),
		"srv/jvm/gradle.lockfile":                            fixture(t, "java/gradle.lockfile"),
		"srv/jvm/pom.xml":                                    fixture(t, "java/pom.xml"),
		"usr/local/bin/rustapp":                              auditableBinary(t, map[string]string{"smallvec": "1.6.0", "log": "0.4.14"}),
	})
	// The benign twins: the same kinds of files at the fixed versions.
	fixed := t.TempDir()
	scantest.WriteFiles(t, fixed, map[string][]byte{
		"fixed/py/requirements.txt": []byte("requests==2.31.0\nPyYAML==5.4\n"),
		"fixed/py/poetry.lock":      fixture(t, "python/poetry.lock"),
		"fixed/js/yarn.lock":        []byte("# yarn lockfile v1\n\n\nlodash@^4.17.21:\n  version \"4.17.21\"\n\nminimist@^1.2.6:\n  version \"1.2.6\"\n"),
		"fixed/rb/Gemfile.lock":     []byte("GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (2.2.3.1)\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  rack\n"),
		"opt/ruby/lib/ruby/gems/3.1.0/specifications/rack-2.2.3.1.gemspec": []byte("Gem::Specification.new do |s|\n  s.name = \"rack\".freeze\n  s.version = \"2.2.3.1\"\nend\n"),
		"fixed/php/composer.lock":     []byte(`{"packages": [{"name": "guzzlehttp/guzzle", "version": "7.4.3"}, {"name": "guzzlehttp/guzzle-legacy", "version": "6.5.6"}]}`),
		"fixed/rs/Cargo.lock":         []byte("version = 3\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.1\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"),
		"fixed/cs/packages.lock.json": []byte(`{"version": 1, "dependencies": {"net8.0": {"Newtonsoft.Json": {"type": "Direct", "requested": "[13.0.1, )", "resolved": "13.0.1"}}}}`),
		"fixed/jvm/gradle.lockfile":   []byte("org.apache.logging.log4j:log4j-core:2.12.2=runtimeClasspath\n"),
		"fixed/jvm/pom.xml":           []byte("<project><dependencies><dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.3.1</version></dependency></dependencies></project>"),
		"fixed/bin/rustapp2":          auditableBinary(t, map[string]string{"smallvec": "1.6.1"}),
	})
	img, err := mutate.AppendLayers(empty.Image, scantest.DirLayer(t, vulnerable), scantest.DirLayer(t, fixed))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/shop/polyglot:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	rep, err := Image(context.Background(), ref, db, Options{Logger: quiet, Analyzers: append(analyzer.All(), analyzer.Lockfiles()...)})
	if err != nil {
		t.Fatal(err)
	}

	got := map[string][]string{}
	severity := map[string]string{}
	for _, f := range rep.Findings {
		got[f.Location.Path] = append(got[f.Location.Path], f.PkgType+" "+f.PkgName+" "+f.InstalledVersion+" "+f.VulnerabilityID+" fixed "+f.FixedVersion)
		severity[f.VulnerabilityID] = f.Severity
	}
	for _, v := range got {
		sort.Strings(v)
	}
	const (
		requests = "CVE-2023-32681 fixed 2.31.0" // GHSA-j8r2-6x86-q33q: >= 2.3.0, < 2.31.0
		pyyaml   = "CVE-2020-14343 fixed 5.4"    // GHSA-8q59-q68h-6hv4: < 5.4
		rack     = "CVE-2022-30123 fixed 2.0.9.1, 2.1.4.1, 2.2.3.1"
		guzzle   = "CVE-2022-29248 fixed 6.5.6, 7.4.3"  // GHSA-cwmx-hcrq-mhc3
		smallvec = "CVE-2021-25900 fixed 0.6.14, 1.6.1" // GHSA-43w2-9j62-hq99
		newton   = "CVE-2024-21907 fixed 13.0.1"        // GHSA-5crp-9r3c-p9vr
		log4j    = "CVE-2021-44228 fixed 2.15.0, 2.3.1, 2.12.2"
		lodash   = "CVE-2021-23337 fixed 4.17.21"      // corpus GHSA-35jh-r3h4-6jhm; not GHSA-p6mc-m468-83gw (fixed 4.17.20)
		minimist = "CVE-2021-44906 fixed 1.2.6, 0.2.4" // corpus GHSA-xvch-5gv4-984h
	)
	npm := []string{"npm lodash 4.17.20 " + lodash, "npm minimist 1.2.5 " + minimist}
	want := map[string][]string{
		"srv/py/pip/requirements.txt":                        {"python PyYAML 5.3.1 " + pyyaml, "python requests 2.25.1 " + requests},
		"srv/py/pipenv/Pipfile.lock":                         {"python requests 2.25.1 " + requests},
		"srv/py/poetry/poetry.lock":                          {"python pyyaml 5.3.1 " + pyyaml},
		"srv/js/yarn/yarn.lock":                              npm,
		"srv/js/berry/yarn.lock":                             npm,
		"srv/js/pnpm/pnpm-lock.yaml":                         npm,
		"srv/rb/Gemfile.lock":                                {"gem rack 2.2.3 " + rack},
		"usr/local/bundle/specifications/rack-2.2.3.gemspec": {"gem rack 2.2.3 " + rack},
		"srv/php/composer.lock":                              {"composer guzzlehttp/guzzle 7.4.2 " + guzzle},
		"srv/php/vendor/composer/installed.json":             {"composer guzzlehttp/guzzle 7.4.2 " + guzzle},
		"srv/rs/Cargo.lock":                                  {"cargo smallvec 1.6.0 " + smallvec},
		"usr/local/bin/rustapp":                              {"cargo smallvec 1.6.0 " + smallvec},
		"srv/cs/packages.lock.json":                          {"nuget Newtonsoft.Json 12.0.3 " + newton},
		"app/Shop.Api.deps.json":                             {"nuget Newtonsoft.Json 12.0.3 " + newton},
		"srv/jvm/gradle.lockfile":                            {"maven org.apache.logging.log4j:log4j-core 2.14.1 " + log4j},
		"srv/jvm/pom.xml":                                    {"maven org.apache.logging.log4j:log4j-core 2.14.1 " + log4j},
	}
	if !reflect.DeepEqual(got, want) {
		for p := range mergeKeys(got, want) {
			if !reflect.DeepEqual(got[p], want[p]) {
				t.Errorf("%s:\n got %q\nwant %q", p, got[p], want[p])
			}
		}
	}
	for id, sev := range map[string]string{"CVE-2021-44228": "CRITICAL", "CVE-2022-30123": "HIGH", "CVE-2023-32681": "MEDIUM", "CVE-2024-21907": "HIGH"} {
		if severity[id] != sev {
			t.Errorf("%s severity %q, want GHSA's %q", id, severity[id], sev)
		}
	}
	// The benign twins were read (their packages are listed) and matched
	// nothing.
	twins := map[string]bool{}
	for _, p := range rep.Packages {
		if strings.HasPrefix(p.Location.Path, "fixed/") || strings.HasPrefix(p.Location.Path, "opt/ruby/") {
			twins[p.Type+" "+p.Name+" "+p.Version] = true
		}
	}
	for _, w := range []string{
		"python requests 2.31.0", "python PyYAML 5.4", "npm lodash 4.17.21", "npm minimist 1.2.6", "gem rack 2.2.3.1",
		"composer guzzlehttp/guzzle 7.4.3", "cargo smallvec 1.6.1", "nuget Newtonsoft.Json 13.0.1",
		"maven org.apache.logging.log4j:log4j-core 2.12.2", "maven org.apache.logging.log4j:log4j-core 2.3.1",
	} {
		if !twins[w] {
			t.Errorf("benign twin %q not in the inventory: %v", w, twins)
		}
	}
	// The POM's unresolvable dependencies are warned about in the report.
	warned := 0
	for _, w := range rep.Warnings {
		if strings.HasPrefix(w, "srv/jvm/pom.xml: ") {
			warned++
		}
	}
	if warned != 3 {
		t.Errorf("report warnings %q: want 3 about srv/jvm/pom.xml", rep.Warnings)
	}
}

func mergeKeys(a, b map[string][]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
