package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/inventory"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/taskimages"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// debianAdvisories copies the Debian facts of the shared corpus into a
// folder the test may add to, and builds a DB from it into dbDir.
func debianAdvisories(t *testing.T, dbDir string) string {
	t.Helper()
	src := t.TempDir()
	from := filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm")
	to := filepath.Join(src, "debian-bookworm")
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := vulndb.Build(context.Background(), dbDir, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	return src
}

func vulnKeys(vs []api.TaskVulnerability) []string {
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%s %s %s %s", v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.FixedVersion))
	}
	slices.Sort(out)
	return out
}

func (e *testEnv) taskImages(query string) api.TaskImageList {
	e.t.Helper()
	r := e.do("GET", api.PathTaskImages+query, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		e.t.Fatalf("GET %s: %d %s", api.PathTaskImages+query, r.status, r.body)
	}
	var l api.TaskImageList
	if err := json.Unmarshal([]byte(r.body), &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *testEnv) taskImage(id int64, query string) api.TaskImage {
	e.t.Helper()
	p := api.PathTaskImages + "/" + strconv.FormatInt(id, 10) + query
	r := e.do("GET", p, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		e.t.Fatalf("GET %s: %d %s", p, r.status, r.body)
	}
	var ti api.TaskImage
	if err := json.Unmarshal([]byte(r.body), &ti); err != nil {
		e.t.Fatal(err)
	}
	return ti
}

// TestTaskImagesMatchImageScan: the defender's inventory of a
// debootstrap'ed bookworm, posted as an agent, shows in GET
// /api/v1/images/tasks with the same Debian findings as `taskguard image
// scan` of the same root filesystem against the same DB; the filters work;
// and an advisory added to the DB shows without a new inventory.
func TestTaskImagesMatchImageScan(t *testing.T) {
	testenv.RequireRoot(t)
	root := scantest.Debootstrap(t, "bookworm", nil)
	ctx := context.Background()
	dbDir := t.TempDir()
	src := debianAdvisories(t, dbDir)
	e := newTestEnvWith(t, auth.ThrottleConfig{}, &taskimages.Matcher{Dir: dbDir})

	db, err := vulndb.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Image(ctx, root, db, scan.Options{Image: image.Options{Kind: image.KindRootFS}})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range rep.Findings {
		if f.PkgType == "dpkg" {
			want = append(want, fmt.Sprintf("%s %s %s %s", f.VulnerabilityID, f.PkgName, f.InstalledVersion, f.FixedVersion))
		}
	}
	slices.Sort(want)
	if len(want) == 0 {
		t.Fatal("the image scan found no Debian findings: the corpus no longer fits the debootstrap")
	}

	inv, err := inventory.Scan(ctx, inventory.Options{Root: root, CPUBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	inv.TaskFamily, inv.TaskID, inv.Container, inv.Image = "shop-web", "task-1", "web", "registry.example/shop/web:1.4"
	body, _ := json.Marshal(inv)
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAgent), string(body)); r.status != 204 {
		t.Fatalf("post inventory: %d %s", r.status, r.body)
	}
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAuditor), string(body)); r.status != 403 {
		t.Errorf("an auditor posted an inventory: %d", r.status)
	}
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAgent), `{"container":""}`); r.status != 400 {
		t.Errorf("an invalid inventory: %d, want 400", r.status)
	}

	list := e.taskImages("")
	if len(list.Images) != 1 || list.Images[0].TaskFamily != "shop-web" || list.Images[0].Container != "web" {
		t.Fatalf("images = %+v", list.Images)
	}
	id := list.Images[0].ID
	detail := e.taskImage(id, "")
	if got := vulnKeys(detail.Vulnerabilities); !slices.Equal(got, want) {
		t.Errorf("console findings differ from the image scan:\n got %q\nwant %q", got, want)
	}
	if detail.OS == nil || detail.OS.Family != "debian" || len(detail.ComplianceFindings) == 0 {
		t.Errorf("detail os %+v, %d compliance findings", detail.OS, len(detail.ComplianceFindings))
	}

	// Filters.
	if l := e.taskImages("?task=shop-*"); len(l.Images) != 1 {
		t.Errorf("task=shop-*: %d images, want 1", len(l.Images))
	}
	if l := e.taskImages("?task=bank-*"); len(l.Images) != 0 {
		t.Errorf("task=bank-*: %d images, want 0", len(l.Images))
	}
	if l := e.taskImages("?image=registry.example/shop/*"); len(l.Images) != 1 {
		t.Errorf("image glob: %d images, want 1", len(l.Images))
	}
	cve := detail.Vulnerabilities[0].VulnerabilityID
	one := e.taskImage(id, "?cve="+cve)
	for _, v := range one.Vulnerabilities {
		if v.VulnerabilityID != cve {
			t.Errorf("cve=%s kept %s", cve, v.VulnerabilityID)
		}
	}
	if len(one.Vulnerabilities) == 0 {
		t.Errorf("cve=%s kept nothing", cve)
	}
	fixed := 0
	for _, v := range detail.Vulnerabilities {
		if v.FixedVersion != "" {
			fixed++
		}
	}
	if got := len(e.taskImage(id, "?fixed=true").Vulnerabilities); got != fixed {
		t.Errorf("fixed=true: %d vulnerabilities, want %d", got, fixed)
	}
	if r := e.do("GET", api.PathTaskImages+"?severity=bad", basic(auth.RoleAuditor), ""); r.status != 400 {
		t.Errorf("severity=bad: %d, want 400", r.status)
	}
	if r := e.do("GET", api.PathTaskImages+"/999999", basic(auth.RoleAuditor), ""); r.status != 404 {
		t.Errorf("unknown id: %d, want 404", r.status)
	}

	// A DB update adds an advisory for an installed package: the finding
	// appears without a new inventory.
	const newCVE = "CVE-2099-0001"
	var bash api.InventoryPackage
	for _, p := range inv.Packages {
		if p.Name == "bash" {
			bash = p
		}
	}
	if bash.Name == "" {
		t.Fatal("no bash in the inventory")
	}
	if l := e.taskImages("?cve=" + newCVE); len(l.Images) != 0 {
		t.Fatalf("%s before the update: %d images", newCVE, len(l.Images))
	}
	added := fmt.Sprintf(`[{"package":"bash","source":%q,"installed":%q,"fixed":"99.0-1","cves":[%q]}]`, bash.SrcName, bash.Version, newCVE)
	if err := os.WriteFile(filepath.Join(src, "debian-bookworm", "added.json"), []byte(added), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := vulndb.Build(ctx, dbDir, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	l := e.taskImages("?cve=" + newCVE)
	if len(l.Images) != 1 || l.Images[0].ID != id {
		t.Fatalf("%s after the DB update: %+v, want the same task image", newCVE, l.Images)
	}
	got := e.taskImage(id, "?cve="+newCVE).Vulnerabilities
	if len(got) != 1 || got[0].PkgName != "bash" || got[0].FixedVersion != "99.0-1" {
		t.Errorf("new finding = %+v", got)
	}
}

// TestTaskImagesWithoutDB: without a DB the images are listed with a warning.
func TestTaskImagesWithoutDB(t *testing.T) {
	e := newTestEnvWith(t, auth.ThrottleConfig{}, nil)
	inv := api.Inventory{TaskFamily: "x", Container: "c", Hash: "sha256:1", Packages: []api.InventoryPackage{{Type: "dpkg", Name: "bash", Version: "5.2"}}}
	body, _ := json.Marshal(inv)
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAgent), string(body)); r.status != 204 {
		t.Fatalf("post inventory: %d %s", r.status, r.body)
	}
	l := e.taskImages("")
	if len(l.Images) != 1 || len(l.Images[0].Warnings) == 0 || l.Images[0].Packages != 1 {
		t.Errorf("images = %+v, want one with a no-DB warning", l.Images)
	}
}

// TestTaskImagesPages: the "Images in tasks" page lists the image with its
// task family and links to its detail; the nav shows it beside the CI
// scan results.
func TestTaskImagesPages(t *testing.T) {
	e := newTestEnvWith(t, auth.ThrottleConfig{}, nil)
	inv := api.Inventory{TaskFamily: "shop-web", TaskID: "task-9", Container: "web", Image: "registry.example/shop/web:1.4", Hash: "sha256:1",
		Packages:   []api.InventoryPackage{{Type: "dpkg", Name: "bash", Version: "5.2"}},
		Compliance: []api.ComplianceFinding{{CheckID: "TG-IMG-009", Title: "SSH server installed", Severity: "MEDIUM", Target: "/usr/sbin/sshd", Message: "/usr/sbin/sshd is installed"}}}
	body, _ := json.Marshal(inv)
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAgent), string(body)); r.status != 204 {
		t.Fatalf("post inventory: %d %s", r.status, r.body)
	}
	id := e.taskImages("").Images[0].ID
	r := e.do("GET", "/images/tasks?task=shop-*", basic(auth.RoleAuditor), "")
	for _, want := range []string{"Images in tasks", "shop-web", "registry.example/shop/web:1.4", fmt.Sprintf(`href="/images/tasks/%d"`, id), `href="/scans"`} {
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("list page (%d) lacks %q", r.status, want)
		}
	}
	if r := e.do("GET", "/images/tasks?task=bank-*", basic(auth.RoleAuditor), ""); strings.Contains(r.body, "shop-web") {
		t.Error("the task filter kept another family")
	}
	r = e.do("GET", fmt.Sprintf("/images/tasks/%d", id), basic(auth.RoleAuditor), "")
	for _, want := range []string{"web in shop-web", "TG-IMG-009", "/usr/sbin/sshd is installed", "task-9"} {
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("detail page (%d) lacks %q", r.status, want)
		}
	}
	if r := e.do("GET", "/images/tasks/424242", basic(auth.RoleAuditor), ""); r.status != 404 {
		t.Errorf("unknown task image page: %d, want 404", r.status)
	}
}
