package taskimages

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// serveDB publishes the DB in dir as trivy's OCI artifact on a loopback
// registry and returns its reference.
func serveDB(t *testing.T, dir string) string {
	t.Helper()
	img := scantest.DBArtifact(t, dir, vulndb.LayerMediaType)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/aquasecurity/trivy-db:2"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestUpdaterInstallsNewAdvisories: the console's DB is due; the registry
// has one with an advisory more; after one scheduled update the stored
// inventory shows the new CVE, without a new inventory.
func TestUpdaterInstallsNewAdvisories(t *testing.T) {
	ctx := context.Background()
	corpus := filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm")
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "debian-bookworm"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(corpus, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "debian-bookworm", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	built := time.Now().Add(-48 * time.Hour) // due: NextUpdate is a day after
	consoleDir := filepath.Join(t.TempDir(), "db")
	if _, err := vulndb.Build(ctx, consoleDir, src, built); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "debian-bookworm", "added.json"),
		[]byte(`[{"package":"base-files","source":"base-files","installed":"12.4+deb12u5","fixed":"99.0","cves":["CVE-2099-0002"]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "newer")
	if _, err := vulndb.Build(ctx, newer, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	ref := serveDB(t, newer)

	m := &Matcher{Dir: consoleDir}
	invs := []store.StoredInventory{stored(1, "shop", "shop/web:1")}
	if got, err := m.Match(ctx, invs, Filter{CVE: "CVE-2099-0002"}, false); err != nil || len(got.Images) != 0 {
		t.Fatalf("before the update: %+v, %v", got, err)
	}
	u := &Updater{Matcher: m, Options: vulndb.UpdateOptions{Repository: ref}}
	res, err := u.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Downloaded {
		t.Fatalf("a due DB was not downloaded: %+v", res)
	}
	got, err := m.Match(ctx, invs, Filter{CVE: "CVE-2099-0002"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 1 || len(got.Images[0].Vulnerabilities) != 1 || got.Images[0].Vulnerabilities[0].PkgName != "base-files" {
		t.Fatalf("after the update: %+v", got.Images)
	}
	// Fresh now: the next run does not download (the registry is gone).
	u.Options.Repository = "127.0.0.1:1/none/trivy-db:2"
	if res, err := u.Update(ctx); err != nil || res.Downloaded {
		t.Errorf("fresh DB: %+v, %v; want no download", res, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(consoleDir), ".vulndb-next-*")); len(left) != 0 {
		t.Errorf("staging folders left: %v", left)
	}
}
