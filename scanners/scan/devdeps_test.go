package scan

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// TestDevDependenciesCrossCheck: a vulnerable package that only
// devDependencies (or Poetry's dev group) reach raises no finding by
// default and one with IncludeDev; the production ones are found either
// way. minimist 0.0.10 (optimist's, dev only) and 1.2.5 (production) are
// both in GHSA-xvch-5gv4-984h's ranges (< 0.2.4, >= 1.0.0 < 1.2.6);
// PyYAML 5.3.1 (dev group) in GHSA-8q59-q68h-6hv4's (< 5.4).
func TestDevDependenciesCrossCheck(t *testing.T) {
	db := openLanguageDB(t)
	dir := t.TempDir()
	scantest.WriteFiles(t, dir, map[string][]byte{
		"srv/yarn/yarn.lock":         fixture(t, "yarn-v1-dev/yarn.lock"),
		"srv/yarn/package.json":      fixture(t, "yarn-v1-dev/package.json"),
		"srv/berry/yarn.lock":        fixture(t, "yarn-berry-dev/yarn.lock"),
		"srv/berry/package.json":     fixture(t, "yarn-berry-dev/package.json"),
		"srv/py/poetry.lock":         fixture(t, "python/poetry-groups/poetry.lock"),
		"srv/py/pyproject.toml":      fixture(t, "python/poetry-groups/pyproject.toml"),
		"srv/pnpm/pnpm-lock.yaml":    fixture(t, "pnpm-v9/pnpm-lock.yaml"),
		"srv/pipenv/Pipfile.lock":    fixture(t, "python/Pipfile.lock"),
		"srv/composer/composer.lock": fixture(t, "php/composer.lock"),
	})
	img, err := mutate.AppendLayers(empty.Image, scantest.DirLayer(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/shop/dev:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	findings := func(includeDev bool) map[string]bool {
		rep, err := Image(context.Background(), ref, db, Options{Logger: quiet, Analyzers: append(analyzer.All(), analyzer.Lockfiles()...), IncludeDev: includeDev})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, f := range rep.Findings {
			got[f.Location.Path+" "+f.PkgName+" "+f.InstalledVersion+" "+f.VulnerabilityID] = true
		}
		return got
	}
	prod := []string{
		"srv/yarn/yarn.lock minimist 1.2.5 CVE-2021-44906",
		"srv/yarn/yarn.lock lodash 4.17.20 CVE-2021-23337",
		"srv/berry/yarn.lock minimist 1.2.5 CVE-2021-44906",
		"srv/py/poetry.lock requests 2.25.1 CVE-2023-32681",
		"srv/pnpm/pnpm-lock.yaml minimist 1.2.5 CVE-2021-44906",
		"srv/pipenv/Pipfile.lock requests 2.25.1 CVE-2023-32681",
	}
	dev := []string{
		"srv/yarn/yarn.lock minimist 0.0.10 CVE-2021-44906",
		"srv/berry/yarn.lock minimist 0.0.10 CVE-2021-44906",
		"srv/py/poetry.lock pyyaml 5.3.1 CVE-2020-14343",
	}
	def, with := findings(false), findings(true)
	for _, f := range prod {
		if !def[f] || !with[f] {
			t.Errorf("production finding %q: by default %v, with IncludeDev %v", f, def[f], with[f])
		}
	}
	for _, f := range dev {
		if def[f] {
			t.Errorf("development-only finding %q raised by default", f)
		}
		if !with[f] {
			t.Errorf("development-only finding %q not raised with IncludeDev", f)
		}
	}
	if len(with) <= len(def) {
		t.Errorf("IncludeDev gave %d findings, default %d", len(with), len(def))
	}
}
