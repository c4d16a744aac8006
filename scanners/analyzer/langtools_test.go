package analyzer

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// These tests have the ecosystems' own tools (from Debian, offline) write
// lock files and metadata, and check what the analyzers read against what
// the same tools say about them.

// run runs a command in dir and returns its standard output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s%s", name, args, err, out, stderr.String())
	}
	return string(out)
}

// analyzeToolFile runs analyzer a on the file at path (as rel in the image).
func analyzeToolFile(t *testing.T, a Analyzer, path, rel string) *Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info := fileInfo{name: filepath.Base(path), size: int64(len(b)), mode: 0o644}
	if !a.Required(rel, info) {
		t.Fatalf("%s does not want %s", a.Type(), rel)
	}
	res, err := a.Analyze(context.Background(), Input{Path: rel, Info: info, Content: b})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// prodOnly leaves out the packages marked Dev.
func prodOnly(pkgs []Package) []Package {
	var out []Package
	for _, p := range pkgs {
		if !p.Dev {
			out = append(out, p)
		}
	}
	return out
}

func nameVersions(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name+"@"+p.Version)
	}
	sort.Strings(out)
	return out
}

// bundlerSpecs lists the GEM and GIT specs (not PATH ones) of a Gemfile.lock as Bundler's own
// parser reads them, without platforms, once each; dir holds a Gemfile
// (Bundler wants one).
func bundlerSpecs(t *testing.T, dir, ruby, lock string) []string {
	t.Helper()
	lock, err := filepath.Abs(lock)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, []string{"HOME=" + dir}, ruby, "-rbundler", "-e",
		`Bundler::LockfileParser.new(File.read(ARGV[0])).specs.each { |s| puts "#{s.name}@#{s.version}" if s.source.is_a?(Bundler::Source::Git) || !s.source.is_a?(Bundler::Source::Path) }`, lock)
	seen := map[string]bool{}
	var specs []string
	for _, l := range strings.Fields(out) {
		if !seen[l] {
			seen[l] = true
			specs = append(specs, l)
		}
	}
	sort.Strings(specs)
	return specs
}

// TestGemfileLockAgainstBundler has Bundler (Debian's ruby-bundler) lock a
// Gemfile against Debian's installed rack, and reads both that lock file
// and the hand-written fixture (GIT, PATH and platform gems) as Bundler's
// own LockfileParser does.
func TestGemfileLockAgainstBundler(t *testing.T) {
	bundle := testenv.LookPath(t, "bundle", "ruby-bundler")
	ruby := testenv.LookPath(t, "ruby", "ruby")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Gemfile"), []byte("source \"https://rubygems.org\"\ngem \"rack\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir, "BUNDLE_USER_HOME=" + filepath.Join(dir, ".bundle")}
	cmd := exec.Command(bundle, "lock", "--local")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Skip(t, "bundle lock --local (is ruby-rack installed?): %v\n%s", err, out)
	}
	for _, lock := range []string{filepath.Join(dir, "Gemfile.lock"), filepath.Join("testdata", "lockfiles", "ruby", "Gemfile.lock")} {
		res := analyzeToolFile(t, gemLock{}, lock, "srv/app/Gemfile.lock")
		got, want := nameVersions(res.Packages), bundlerSpecs(t, dir, ruby, lock)
		if len(want) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %q, Bundler reads %q", lock, got, want)
		}
	}
}

// TestGemspecsAgainstRubyGems reads every installed gem specification
// Debian's Ruby packages ship and compares with Gem::Specification.load.
func TestGemspecsAgainstRubyGems(t *testing.T) {
	ruby := testenv.LookPath(t, "ruby", "ruby")
	specs, err := filepath.Glob("/usr/share/rubygems-integration/all/specifications/*.gemspec")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) == 0 {
		testenv.Skip(t, "no gem specifications under /usr/share/rubygems-integration (apt-get install ruby-rack)")
	}
	out := run(t, "", nil, ruby, append([]string{"-e", `ARGV.each { |f| s = Gem::Specification.load(f); puts "#{s.name}@#{s.version}" }`}, specs...)...)
	want := strings.Fields(out)
	var got []string
	for _, f := range specs {
		rel := strings.TrimPrefix(f, "/")
		res := analyzeToolFile(t, gemSpec{}, f, rel)
		got = append(got, nameVersions(res.Packages)...)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, RubyGems loads %q", got, want)
	}
}

// TestComposerAgainstComposer has Composer (Debian's composer) resolve an
// application against local path repositories (no network), then checks
// composer.lock against `composer show --locked --no-dev` and
// vendor/composer/installed.json against `composer show` (dev included).
func TestComposerAgainstComposer(t *testing.T) {
	composer := testenv.LookPath(t, "composer", "composer")
	dir := t.TempDir()
	files := map[string]string{
		"pkgs/guzzle/composer.json":   `{"name": "guzzlehttp/guzzle", "version": "7.4.2", "type": "library", "require": {"guzzlehttp/promises": "^1.5"}}`,
		"pkgs/promises/composer.json": `{"name": "guzzlehttp/promises", "version": "1.5.1", "type": "library"}`,
		"pkgs/phpunit/composer.json":  `{"name": "phpunit/phpunit", "version": "9.5.20", "type": "library"}`,
		"app/composer.json": `{"name": "acme/shop", "require": {"guzzlehttp/guzzle": "7.4.2"}, "require-dev": {"phpunit/phpunit": "9.5.20"},
			"repositories": [{"type": "path", "url": "../pkgs/*", "options": {"symlink": false}}, {"packagist.org": false}]}`,
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := filepath.Join(dir, "app")
	env := []string{"HOME=" + dir, "COMPOSER_HOME=" + filepath.Join(dir, ".composer"), "COMPOSER_NO_AUDIT=1"}
	run(t, app, env, composer, "update", "--no-interaction", "--no-progress", "--no-audit")
	show := func(args ...string) []string {
		var doc map[string][]struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		}
		if err := json.Unmarshal([]byte(run(t, app, env, composer, append([]string{"show", "--format=json"}, args...)...)), &doc); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, list := range doc {
			for _, p := range list {
				out = append(out, p.Name+"@"+p.Version)
			}
		}
		sort.Strings(out)
		return out
	}
	lock := analyzeToolFile(t, composerLock{}, filepath.Join(app, "composer.lock"), "srv/app/composer.lock")
	if got, want := nameVersions(prodOnly(lock.Packages)), show("--locked", "--no-dev"); len(want) != 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("composer.lock: got %q, composer shows %q", got, want)
	}
	if got, want := nameVersions(lock.Packages), show("--locked"); len(want) <= 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("composer.lock with its dev packages: got %q, composer shows %q", got, want)
	}
	inst := analyzeToolFile(t, composerInstalled{}, filepath.Join(app, "vendor", "composer", "installed.json"), "srv/app/vendor/composer/installed.json")
	if got, want := nameVersions(inst.Packages), show(); len(want) != 3 || !reflect.DeepEqual(got, want) {
		t.Errorf("installed.json: got %q, composer shows %q", got, want)
	}
}

// TestCargoLockAgainstCargo has Cargo lock a crate against Debian's
// vendored crates (librust-*-dev, a directory source: no network) and
// compares Cargo.lock with `cargo metadata`'s registry packages.
func TestCargoLockAgainstCargo(t *testing.T) {
	cargo := testenv.LookPath(t, "cargo", "cargo")
	const registry = "/usr/share/cargo/registry"
	for _, c := range []string{"smallvec-*", "log-*"} {
		if m, _ := filepath.Glob(filepath.Join(registry, c)); len(m) == 0 {
			testenv.Skip(t, "%s has no %s (apt-get install librust-smallvec-dev librust-log-dev)", registry, c)
		}
	}
	dir := t.TempDir()
	files := map[string]string{
		"Cargo.toml":         "[package]\nname = \"rustapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nsmallvec = \"1\"\nlog = \"0.4\"\n",
		"src/main.rs":        "fn main() {}\n",
		".cargo/config.toml": "[source.crates-io]\nreplace-with = \"debian\"\n\n[source.debian]\ndirectory = \"" + registry + "\"\n",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"CARGO_HOME=" + filepath.Join(dir, ".cargo-home"), "CARGO_NET_OFFLINE=true"}
	run(t, dir, env, cargo, "generate-lockfile", "--offline")
	var meta struct {
		Packages []struct {
			Name    string  `json:"name"`
			Version string  `json:"version"`
			Source  *string `json:"source"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(run(t, dir, env, cargo, "metadata", "--format-version", "1", "--offline", "--locked")), &meta); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range meta.Packages {
		if p.Source != nil {
			want = append(want, p.Name+"@"+p.Version)
		}
	}
	sort.Strings(want)
	res := analyzeToolFile(t, cargoLock{}, filepath.Join(dir, "Cargo.lock"), "srv/app/Cargo.lock")
	if got := nameVersions(res.Packages); len(want) < 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("Cargo.lock: got %q, cargo metadata says %q", got, want)
	}
}
