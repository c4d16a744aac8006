package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// dbRegistry starts a loopback registry and returns the trivy-db reference
// in it (nothing is pushed yet).
func dbRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://") + "/aquasecurity/trivy-db:2"
}

// publishDB pushes the DB in dir to ref as the trivy-db artifact.
func publishDB(t *testing.T, ref, dir string) {
	t.Helper()
	img := scantest.DBArtifact(t, dir, vulndb.LayerMediaType)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// TestImageAlertsAfterScheduledDBUpdate: the whole console over HTTPS with
// its SQLite store. An agent posts an inventory, an image rule alerts on its
// findings; the console's DB is due and its scheduled update brings an
// advisory more, which becomes a new alert without a new inventory.
func TestImageAlertsAfterScheduledDBUpdate(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	if err := os.CopyFS(filepath.Join(src, "debian-bookworm"), os.DirFS(filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm"))); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(t.TempDir(), "db")
	if _, err := vulndb.Build(ctx, dbDir, src, time.Now().Add(-48*time.Hour)); err != nil { // due
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "debian-bookworm", "added.json"),
		[]byte(`[{"package":"base-files","source":"base-files","installed":"12.4+deb12u5","fixed":"99.0","cves":["CVE-2099-0004"]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "newer")
	if _, err := vulndb.Build(ctx, newer, src, time.Now()); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, t.TempDir())
	cfg.AdminUser, cfg.AdminPassword = "secops", "env-admin-password"
	ref := dbRegistry(t)
	// The registry is empty until the inventory is in: updates fail (and
	// keep the current DB) until then.
	cfg.VulnDBDir, cfg.VulnDBRepository, cfg.VulnDBUpdate = dbDir, ref, 200*time.Millisecond
	c := start(t, cfg)
	admin := client(t, c, api.WithBasicAuth("secops", "env-admin-password"))
	if _, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "agent", Password: "agent-password", Role: "agent", TaskFamilies: []string{"shop-web"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddImageRule(ctx, policy.ImageRule{Name: "all", Vulnerabilities: policy.VulnRule{AlertThreshold: "UNKNOWN"}}); err != nil {
		t.Fatal(err)
	}
	inv := api.Inventory{TaskFamily: "shop-web", Container: "app", Image: "shop/web:1", Hash: "sha256:x",
		OS: &api.InventoryOS{Family: "debian", Name: "12.5"},
		Packages: []api.InventoryPackage{
			{Type: "dpkg", Name: "perl-base", Version: "5.36.0-7+deb12u3", SrcName: "perl", SrcVersion: "5.36.0-7+deb12u3"},
			{Type: "dpkg", Name: "base-files", Version: "12.4+deb12u5"},
		}}
	body, _ := json.Marshal(inv)
	req, _ := http.NewRequest("POST", c.URL()+api.PathAgentInventory, bytes.NewReader(body))
	req.SetBasicAuth("agent", "agent-password")
	req.Header.Set("Content-Type", "application/json")
	resp, err := trusting(c.Certificate()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("post inventory: %d", resp.StatusCode)
	}

	alerts := func() []api.Audit {
		page, err := admin.RuntimeAudits(ctx, api.AuditQuery{Kind: api.AuditImage, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return page.Audits
	}
	has := func(as []api.Audit, cve string) bool {
		for _, a := range as {
			if strings.HasPrefix(a.Message, cve+" ") {
				return true
			}
		}
		return false
	}
	before := alerts()
	if len(before) == 0 || has(before, "CVE-2099-0004") {
		t.Fatalf("before the update: %d alerts (want the corpus's), CVE-2099-0004 among them: %v", len(before), has(before, "CVE-2099-0004"))
	}
	publishDB(t, ref, newer)
	deadline := time.Now().Add(20 * time.Second)
	for {
		as := alerts()
		if has(as, "CVE-2099-0004") {
			if !strings.Contains(as[0].Message, "in task family shop-web container app") {
				t.Errorf("alert message %q", as[0].Message)
			}
			seen := map[string]bool{}
			for _, a := range as {
				if seen[a.Message] {
					t.Errorf("duplicate alert %q", a.Message)
				}
				seen[a.Message] = true
			}
			if len(as) != len(before)+1 {
				t.Errorf("%d alerts after the update, want %d and one more", len(as), len(before))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert for the advisory the DB update added; alerts: %+v", as)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestImageAlertsForInventoriesStoredWithoutDB: inventories a console stored
// while it had no vulnerability DB raise their image alerts as soon as the
// console starts again with --vuln-db-dir, without waiting for a DB update.
func TestImageAlertsForInventoriesStoredWithoutDB(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	if err := os.CopyFS(filepath.Join(src, "debian-bookworm"), os.DirFS(filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm"))); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(t.TempDir(), "db")
	if _, err := vulndb.Build(ctx, dbDir, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	cfg := testConfig(t, data)
	cfg.AdminUser, cfg.AdminPassword = "secops", "env-admin-password"
	first, err := Start(ctx, cfg) // no DB
	if err != nil {
		t.Fatal(err)
	}
	admin := client(t, first, api.WithBasicAuth("secops", "env-admin-password"))
	if _, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "agent", Password: "agent-password", Role: "agent", TaskFamilies: []string{"shop-web"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddImageRule(ctx, policy.ImageRule{Name: "all", Vulnerabilities: policy.VulnRule{AlertThreshold: "UNKNOWN"}}); err != nil {
		t.Fatal(err)
	}
	inv := api.Inventory{TaskFamily: "shop-web", Container: "app", Image: "shop/web:1", Hash: "sha256:x",
		OS: &api.InventoryOS{Family: "debian", Name: "12.5"},
		Packages: []api.InventoryPackage{
			{Type: "dpkg", Name: "perl-base", Version: "5.36.0-7+deb12u3", SrcName: "perl", SrcVersion: "5.36.0-7+deb12u3"},
		}}
	body, _ := json.Marshal(inv)
	req, _ := http.NewRequest("POST", first.URL()+api.PathAgentInventory, bytes.NewReader(body))
	req.SetBasicAuth("agent", "agent-password")
	req.Header.Set("Content-Type", "application/json")
	resp, err := trusting(first.Certificate()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("post inventory: %d", resp.StatusCode)
	}
	countAlerts := func(c *Console) int {
		page, err := client(t, c, api.WithBasicAuth("secops", "env-admin-password")).RuntimeAudits(ctx, api.AuditQuery{Kind: api.AuditImage, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Audits)
	}
	if n := countAlerts(first); n != 0 {
		t.Fatalf("%d image alerts from a console without a DB", n)
	}
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	cfg = testConfig(t, data)
	cfg.AdminUser, cfg.AdminPassword = "secops", "env-admin-password"
	cfg.VulnDBDir = dbDir // no scheduled update
	second := start(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	for countAlerts(second) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no image alert for the stored inventory after a start with a DB")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
