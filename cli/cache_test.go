package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// TestLayerCacheCLI: image scan and ci fill the layer cache in
// <cache-dir>/layers; with it, an archive whose layer blobs are destroyed
// still scans to the same findings (no layer is read), --no-cache reads
// (and fails on) them, and cache clean empties the cache.
func TestLayerCacheCLI(t *testing.T) {
	dbDir := buildDB(t)
	facts := readFacts(t, "rootfs-ssl-expected-debian.json")
	base := layerFromFiles(t, map[string][]byte{
		"etc/os-release":      []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"var/lib/dpkg/status": dpkgStatusOf(facts),
	})
	app := layerFromFiles(t, map[string][]byte{
		"app/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.20"}`),
		"root/.ssh/id_rsa":                     []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n"),
	})
	img, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "web.tar")
	r, _ := name.ParseReference("registry.example.com/shop/web:1.0")
	if err := tarball.WriteToFile(tarPath, r, img); err != nil {
		t.Fatal(err)
	}
	scanJSON := func(path string, extra ...string) (*scan.Report, string, int) {
		args := append([]string{"image", "scan", "--input", path, "--cache-dir", dbDir, "--skip-db-update", "--format", "json"}, extra...)
		out, errOut, code := run(t, args...)
		if code != 0 {
			return nil, errOut, code
		}
		var rep scan.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		return &rep, errOut, code
	}
	want, errOut, code := scanJSON(tarPath)
	if code != 0 {
		t.Fatalf("scan: %d %s", code, errOut)
	}
	entries, _ := filepath.Glob(filepath.Join(dbDir, "layers", "*", "*.entry"))
	if len(entries) < 2 {
		t.Fatalf("the scan left %d cache entries in %s", len(entries), filepath.Join(dbDir, "layers"))
	}
	// ci fills the compliance checks' entries too.
	ciJSON := filepath.Join(dir, "ci.json")
	if _, errOut, code := run(t, "ci", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "--format", "none", "--json", ciJSON); code != 0 && code != 1 {
		t.Fatalf("ci: %d %s", code, errOut)
	}

	spoiled := filepath.Join(dir, "spoiled.tar")
	scantest.SpoilLayers(t, tarPath, spoiled)
	if _, errOut, code := scanJSON(spoiled, "--no-cache"); code != 2 || !strings.Contains(errOut, "layer") {
		t.Fatalf("--no-cache scan of destroyed layers: exit %d, %s; want exit 2 (the test proves nothing otherwise)", code, errOut)
	}
	got, errOut, code := scanJSON(spoiled)
	if code != 0 {
		t.Fatalf("cached scan read a layer: %d %s", code, errOut)
	}
	if !reflect.DeepEqual(got.Findings, want.Findings) || !reflect.DeepEqual(got.Packages, want.Packages) {
		t.Errorf("cached scan differs:\n got %+v\nwant %+v", got.Findings, want.Findings)
	}
	ciJSON2 := filepath.Join(dir, "ci2.json")
	if _, errOut, code := run(t, "ci", "--input", spoiled, "--cache-dir", dbDir, "--skip-db-update", "--format", "none", "--json", ciJSON2); code != 0 && code != 1 {
		t.Fatalf("cached ci read a layer: %d %s", code, errOut)
	}
	b1, _ := os.ReadFile(ciJSON)
	b2, _ := os.ReadFile(ciJSON2)
	var c1, c2 struct {
		Vulnerabilities []any `json:"vulnerabilities"`
		Compliance      []any `json:"compliance"`
	}
	if err := json.Unmarshal(b1, &c1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b2, &c2); err != nil {
		t.Fatal(err)
	}
	if len(c1.Vulnerabilities) == 0 || len(c1.Compliance) == 0 || !reflect.DeepEqual(c1.Vulnerabilities, c2.Vulnerabilities) || !reflect.DeepEqual(c1.Compliance, c2.Compliance) {
		t.Errorf("ci from the cache differs: %d/%d vulnerabilities, %d/%d compliance findings", len(c1.Vulnerabilities), len(c2.Vulnerabilities), len(c1.Compliance), len(c2.Compliance))
	}

	out, errOut, code := run(t, "cache", "clean", "--cache-dir", dbDir)
	if code != 0 || !strings.Contains(out, "cleaned") {
		t.Fatalf("cache clean: %d %s %s", code, out, errOut)
	}
	if left, _ := filepath.Glob(filepath.Join(dbDir, "layers", "*", "*.entry")); len(left) != 0 {
		t.Errorf("cache clean left %v", left)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "trivy.db")); err != nil {
		t.Errorf("cache clean touched the DB: %v", err)
	}
	if _, _, code := scanJSON(spoiled); code != 2 {
		t.Errorf("after cache clean the destroyed layers scanned: exit %d", code)
	}
}
