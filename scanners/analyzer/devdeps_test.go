package analyzer

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// readFixture reads a lock file fixture.
func readFixture(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "lockfiles", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runLockfilesOnFiles writes files into a root filesystem and runs every
// analyzer, lock files too.
func runLockfilesOnFiles(t *testing.T, files map[string][]byte, includeDev bool) *Inventory {
	t.Helper()
	root := t.TempDir()
	scantest.WriteFiles(t, root, files)
	im, err := image.Open(context.Background(), root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inv, err := Run(context.Background(), im, Options{Analyzers: append(All(), Lockfiles()...), IncludeDev: includeDev, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// devNames lists "name@version" of the packages found in file, " (dev)"
// after development-only ones.
func devNames(inv *Inventory, file string) []string {
	var out []string
	for _, p := range inv.Packages {
		if p.Location.Path != file {
			continue
		}
		s := p.Name + "@" + p.Version
		if p.Dev {
			s += " (dev)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// jsProd is the production tree of the yarn-*-dev fixtures (the pnpmProd
// one); jsDev what only devDependencies (left-pad, optimist) reach: an old
// minimist beside the production one, and wordwrap.
var (
	jsProd = []string{
		"@babel/code-frame@7.12.13", "@babel/helper-validator-identifier@7.29.7", "@babel/highlight@7.25.9",
		"ansi-styles@3.2.1", "chalk@2.4.2", "color-convert@1.9.3", "color-name@1.1.3",
		"escape-string-regexp@1.0.5", "has-flag@3.0.0", "js-tokens@4.0.0", "lodash@4.17.20",
		"minimist@1.2.5", "picocolors@1.1.1", "supports-color@5.5.0",
	}
	jsDev = []string{"left-pad@1.3.0 (dev)", "minimist@0.0.10 (dev)", "optimist@0.6.1 (dev)", "wordwrap@0.0.3 (dev)"}
)

func sorted(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	sort.Strings(out)
	return out
}

// TestDevDependenciesFromManifest: the yarn.lock files (yarn 1 and 4, written
// by yarn from a package.json with two dev dependencies) and a poetry.lock
// of Poetry 1.8 (groups) have their development-only packages told apart
// with the manifest beside them: left out by default, marked with
// IncludeDev; a package both trees reach (types-requests' urllib3) stays.
func TestDevDependenciesFromManifest(t *testing.T) {
	pyProd := []string{"certifi@2023.7.22", "chardet@4.0.0", "idna@2.10", "requests@2.25.1", "urllib3@1.26.4"}
	pyDev := []string{"iniconfig@2.0.0 (dev)", "packaging@23.1 (dev)", "pluggy@1.2.0 (dev)", "pytest@7.4.0 (dev)", "pyyaml@5.3.1 (dev)", "types-requests@2.31.0.2 (dev)", "types-urllib3@1.26.25.14 (dev)"}
	tests := []struct {
		dir, lock, manifest string
		prod, dev           []string
	}{
		{"yarn-v1-dev", "yarn.lock", "package.json", jsProd, jsDev},
		{"yarn-berry-dev", "yarn.lock", "package.json", jsProd, jsDev},
		{"python/poetry-groups", "poetry.lock", "pyproject.toml", pyProd, pyDev},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			files := map[string][]byte{
				"srv/app/" + tt.lock:     readFixture(t, tt.dir+"/"+tt.lock),
				"srv/app/" + tt.manifest: readFixture(t, tt.dir+"/"+tt.manifest),
			}
			lock := "srv/app/" + tt.lock
			inv := runLockfilesOnFiles(t, files, false)
			if got := devNames(inv, lock); !reflect.DeepEqual(got, sorted(tt.prod)) {
				t.Errorf("default:\n got %q\nwant %q", got, tt.prod)
			}
			if len(inv.Warnings) != 0 {
				t.Errorf("warnings %q", inv.Warnings)
			}
			inv = runLockfilesOnFiles(t, files, true)
			if got, want := devNames(inv, lock), sorted(tt.prod, tt.dev); !reflect.DeepEqual(got, want) {
				t.Errorf("IncludeDev:\n got %q\nwant %q", got, want)
			}
			// The manifest reports no package of its own.
			if got := devNames(inv, "srv/app/"+tt.manifest); len(got) != 0 {
				t.Errorf("manifest reported packages %q", got)
			}

			// Without the manifest every package is reported, and a
			// warning says why.
			delete(files, "srv/app/"+tt.manifest)
			inv = runLockfilesOnFiles(t, files, false)
			if got, want := devNames(inv, lock), sorted(tt.prod, strip(tt.dev)); !reflect.DeepEqual(got, want) {
				t.Errorf("no manifest:\n got %q\nwant %q", got, want)
			}
			if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], lock+": no "+tt.manifest+" beside it") {
				t.Errorf("no manifest: warnings %q", inv.Warnings)
			}
		})
	}
}

// strip drops the " (dev)" marks.
func strip(l []string) []string {
	var out []string
	for _, s := range l {
		out = append(out, strings.TrimSuffix(s, " (dev)"))
	}
	return out
}

// TestDevDependenciesMarkedInLockFiles: lock files that say themselves
// which packages are for development only keep them, marked, with
// IncludeDev (npm, pnpm, Pipfile.lock, composer.lock, old poetry.lock).
func TestDevDependenciesMarkedInLockFiles(t *testing.T) {
	files := map[string][]byte{
		"srv/pnpm/pnpm-lock.yaml": readFixture(t, "pnpm-v9/pnpm-lock.yaml"),
		"srv/py/Pipfile.lock":     readFixture(t, "python/Pipfile.lock"),
		"srv/py1/poetry.lock":     readFixture(t, "python/poetry-v1/poetry.lock"),
		"srv/php/composer.lock":   readFixture(t, "php/composer.lock"),
	}
	want := map[string]string{
		"srv/pnpm/pnpm-lock.yaml": "left-pad@1.3.0 (dev)",
		"srv/py/Pipfile.lock":     "pytest@7.4.0 (dev)",
		"srv/py1/poetry.lock":     "pytest@6.2.2 (dev)",
		"srv/php/composer.lock":   "phpunit/phpunit@9.5.20 (dev)",
	}
	def := runLockfilesOnFiles(t, files, false)
	with := runLockfilesOnFiles(t, files, true)
	for file, dev := range want {
		d, w := devNames(def, file), devNames(with, file)
		if len(d) == 0 || !reflect.DeepEqual(sorted(d, []string{dev}), w) {
			t.Errorf("%s: default %q, IncludeDev %q: want %q more", file, d, w, dev)
		}
	}
}

// TestYarnWorkspaceDevDependencies: in a workspace, the members'
// production dependencies are roots too.
func TestYarnWorkspaceDevDependencies(t *testing.T) {
	lock := "# yarn lockfile v1\n\n\n" +
		"lodash@4.17.20:\n  version \"4.17.20\"\n\n" +
		"minimist@1.2.5:\n  version \"1.2.5\"\n\n" +
		"left-pad@1.3.0:\n  version \"1.3.0\"\n"
	files := map[string][]byte{
		"srv/mono/yarn.lock":                 []byte(lock),
		"srv/mono/package.json":              []byte(`{"private": true, "workspaces": ["packages/*"], "dependencies": {"lodash": "4.17.20"}}`),
		"srv/mono/packages/api/package.json": []byte(`{"name": "api", "dependencies": {"minimist": "1.2.5"}, "devDependencies": {"left-pad": "1.3.0"}}`),
		"srv/other/package.json":             []byte(`{"dependencies": {"left-pad": "1.3.0"}}`),
	}
	inv := runLockfilesOnFiles(t, files, true)
	if got, want := devNames(inv, "srv/mono/yarn.lock"), []string{"left-pad@1.3.0 (dev)", "lodash@4.17.20", "minimist@1.2.5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestDevDependenciesStaleManifest: a package.json range the lock file
// does not have (edited after yarn wrote the lock) still makes that
// package, and what it reaches, production.
func TestDevDependenciesStaleManifest(t *testing.T) {
	files := map[string][]byte{
		"srv/app/yarn.lock":    readFixture(t, "yarn-v1-dev/yarn.lock"),
		"srv/app/package.json": []byte(`{"dependencies": {"@babel/code-frame": "7.12.13", "lodash": "4.17.20", "minimist": "1.2.5", "optimist": "^0.6.0"}}`),
	}
	want := sorted(jsProd, []string{"left-pad@1.3.0 (dev)", "minimist@0.0.10", "optimist@0.6.1", "wordwrap@0.0.3"})
	if got := devNames(runLockfilesOnFiles(t, files, true), "srv/app/yarn.lock"); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestDevDependenciesAcrossCachedLayers: yarn.lock in a base layer and
// package.json in the application layer above it are joined after the
// layers are overlaid; each layer's cached result holds only its own
// files, so a new application layer on the cached base (another
// package.json that makes optimist a production dependency) changes the
// result, and the base layer is not downloaded again.
func TestDevDependenciesAcrossCachedLayers(t *testing.T) {
	lockDir, appDir, app2Dir := t.TempDir(), t.TempDir(), t.TempDir()
	scantest.WriteFiles(t, lockDir, map[string][]byte{"srv/app/yarn.lock": readFixture(t, "yarn-v1-dev/yarn.lock")})
	scantest.WriteFiles(t, appDir, map[string][]byte{"srv/app/package.json": readFixture(t, "yarn-v1-dev/package.json")})
	scantest.WriteFiles(t, app2Dir, map[string][]byte{"srv/app/package.json": []byte(`{"dependencies": {"@babel/code-frame": "7.12.13", "lodash": "4.17.20", "minimist": "1.2.5", "optimist": "0.6.1"}, "devDependencies": {"left-pad": "1.3.0"}}`)})
	base := scantest.DirLayer(t, lockDir)
	baseDigest, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	counter := &blobCounter{blobs: map[string]int{}, next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(counter)
	t.Cleanup(srv.Close)
	push := func(tag string, layers ...v1.Layer) string {
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			t.Fatal(err)
		}
		ref := strings.TrimPrefix(srv.URL, "http://") + "/dev/app:" + tag
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	ref1 := push("1", base, scantest.DirLayer(t, appDir))
	ref2 := push("2", base, scantest.DirLayer(t, app2Dir))
	counter.take()
	cache, err := layercache.Open(t.TempDir(), layercache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scan := func(ref string) []string {
		im, err := image.Open(context.Background(), ref, image.Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		inv, err := Run(context.Background(), im, Options{Analyzers: append(All(), Lockfiles()...), Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return devNames(inv, "srv/app/yarn.lock")
	}
	if got := scan(ref1); !reflect.DeepEqual(got, jsProd) {
		t.Errorf("cold:\n got %q\nwant %q", got, jsProd)
	}
	if got := scan(ref1); !reflect.DeepEqual(got, jsProd) {
		t.Errorf("warm:\n got %q\nwant %q", got, jsProd)
	}
	counter.take()
	want2 := sorted(jsProd, []string{"minimist@0.0.10", "optimist@0.6.1", "wordwrap@0.0.3"})
	if got := scan(ref2); !reflect.DeepEqual(got, want2) {
		t.Errorf("new app layer on the cached base:\n got %q\nwant %q", got, want2)
	}
	if n := counter.take()[baseDigest.String()]; n != 0 {
		t.Errorf("the cached base layer was downloaded %d times", n)
	}
}

// TestManifestBounds: a manifest above the size bound is not read, and a
// broken one is an error naming it.
func TestManifestBounds(t *testing.T) {
	a := projectManifest{}
	if a.Required("srv/app/package.json", fileInfo{name: "package.json", size: maxManifestFileSize + 1}) {
		t.Error("an oversized package.json is wanted")
	}
	if a.Required("srv/app/node_modules/x/package.json", fileInfo{name: "package.json", size: 10}) {
		t.Error("a dependency's package.json is wanted")
	}
	if _, err := a.Analyze(context.Background(), Input{Path: "srv/app/package.json", Content: []byte(`{"dependencies": [`)}); err == nil || !strings.Contains(err.Error(), "srv/app/package.json") {
		t.Errorf("broken package.json: err %v", err)
	}
	if _, err := a.Analyze(context.Background(), Input{Path: "srv/app/pyproject.toml", Content: []byte("[tool.poetry\n")}); err == nil || !strings.Contains(err.Error(), "pyproject.toml: line ") {
		t.Errorf("broken pyproject.toml: err %v", err)
	}
}

// discardLogger drops the warnings the tests check in the inventory.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
