package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/scanners/sbom"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/scantest"
)

func allFindings(rep *scan.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.PkgType+" "+f.PkgName+" "+f.InstalledVersion+" "+f.FixedVersion+" "+f.VulnerabilityID)
	}
	sort.Strings(out)
	return out
}

// TestSBOMRoundTrip: image scan --format cyclonedx / spdx-json writes an
// SBOM without the DB; sbom scan of it finds exactly what image scan
// finds; ci --sbom writes one beside its reports.
func TestSBOMRoundTrip(t *testing.T) {
	dbDir := buildDB(t)
	facts := readFacts(t, "rootfs-ssl-expected-debian.json")
	goBin, err := os.ReadFile(scantest.GoBinary(t, "golang.org/x/text", "v0.3.5", "golang.org/x/text/language"))
	if err != nil {
		t.Fatal(err)
	}
	base := layerFromFiles(t, map[string][]byte{
		"etc/os-release":      []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"etc/debian_version":  []byte("12.12\n"),
		"var/lib/dpkg/status": dpkgStatusOf(facts),
	})
	app := layerFromFiles(t, map[string][]byte{
		"app/vulnapp":                          goBin,
		"app/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.20"}`),
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
	out, errOut, code := run(t, "image", "scan", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "--format", "json")
	if code != 0 {
		t.Fatalf("image scan: %d %s", code, errOut)
	}
	var want scan.Report
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Findings) < 10 {
		t.Fatalf("only %d findings in the test image", len(want.Findings))
	}
	for _, format := range []string{sbom.FormatCycloneDX, sbom.FormatSPDXJSON} {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(dir, "web."+format+".json")
			// No DB at all: an SBOM needs none.
			_, errOut, code := run(t, "image", "scan", "--input", tarPath, "--cache-dir", filepath.Join(dir, "no-db"), "--offline", "--format", format, "-o", file)
			if code != 0 {
				t.Fatalf("image scan --format %s: %d %s", format, code, errOut)
			}
			out, errOut, code := run(t, "sbom", "scan", file, "--cache-dir", dbDir, "--skip-db-update", "--format", "json")
			if code != 0 {
				t.Fatalf("sbom scan: %d %s", code, errOut)
			}
			var got scan.Report
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(allFindings(&got), allFindings(&want)) {
				t.Errorf("sbom scan findings\n got %q\nwant %q", allFindings(&got), allFindings(&want))
			}
			if got.Artifact.Kind != scan.KindSBOM || got.Artifact.OS == nil || got.Artifact.OS.Name != "12.12" {
				t.Errorf("artifact %+v", got.Artifact)
			}
		})
	}
	sbomPath := filepath.Join(dir, "ci.spdx.json")
	_, errOut, code = run(t, "ci", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "--format", "none", "--sbom", sbomPath)
	if code != 0 && code != 1 {
		t.Fatalf("ci: %d %s", code, errOut)
	}
	f, err := os.Open(sbomPath)
	if err != nil {
		t.Fatalf("ci --sbom wrote nothing: %v (%s)", err, errOut)
	}
	defer f.Close()
	doc, err := sbom.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Format != sbom.FormatSPDXJSON || len(doc.Inventory.Packages) != want.Summary.Packages {
		t.Errorf("ci SBOM: format %s, %d packages, want spdx-json with %d", doc.Format, len(doc.Inventory.Packages), want.Summary.Packages)
	}
	if !strings.Contains(errOut, "SBOM written to") {
		t.Errorf("ci did not say where the SBOM went: %s", errOut)
	}
}

// TestSBOMScanTrivySBOMs: CycloneDX and SPDX documents written by Trivy
// v0.74.0 (testdata/trivy, from `trivy image --format cyclonedx|spdx-json`
// of the image built below) give the findings taskguard finds in the
// image itself.
func TestSBOMScanTrivySBOMs(t *testing.T) {
	dbDir := buildDB(t)
	facts := readFacts(t, "rootfs-ssl-expected-debian.json")
	base := layerFromFiles(t, map[string][]byte{
		"etc/os-release":      []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"etc/debian_version":  []byte("12.12\n"),
		"var/lib/dpkg/status": dpkgStatusOf(facts),
	})
	app := layerFromFiles(t, map[string][]byte{
		"app/node_modules/lodash/package.json":   []byte(`{"name":"lodash","version":"4.17.15"}`),
		"app/node_modules/minimist/package.json": []byte(`{"name":"minimist","version":"1.2.5"}`),
	})
	img, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "web.tar")
	r, _ := name.ParseReference("registry.example.com/shop/web:1.0")
	if err := tarball.WriteToFile(tarPath, r, img); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "image", "scan", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "--format", "json")
	if code != 0 {
		t.Fatalf("image scan: %d %s", code, errOut)
	}
	var want scan.Report
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Findings) < 10 {
		t.Fatalf("only %d findings", len(want.Findings))
	}
	for _, file := range []string{"web.cdx.json", "web.spdx.json"} {
		t.Run(file, func(t *testing.T) {
			out, errOut, code := run(t, "sbom", "scan", filepath.Join("testdata", "trivy", file), "--cache-dir", dbDir, "--skip-db-update", "--format", "json")
			if code != 0 {
				t.Fatalf("sbom scan: %d %s", code, errOut)
			}
			var got scan.Report
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(allFindings(&got), allFindings(&want)) {
				t.Errorf("findings from Trivy's %s\n got %q\nwant %q", file, allFindings(&got), allFindings(&want))
			}
			if got.Summary.Packages != want.Summary.Packages || len(got.Warnings) != 0 {
				t.Errorf("%d packages (want %d), warnings %q", got.Summary.Packages, want.Summary.Packages, got.Warnings)
			}
		})
	}
}
