package action

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/scanners/report"
)

// TestLockfilesInput: the "lockfiles" input makes the scan read an
// application's yarn.lock (minimist 1.2.5, CVE-2021-44906 in the corpus);
// without it only installed packages count.
func TestLockfilesInput(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{
		"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status": "",
		"srv/shop/yarn.lock":  "# yarn lockfile v1\n\n\nminimist@^1.2.5:\n  version \"1.2.5\"\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shop.tar")
	ref, _ := name.ParseReference("registry.example.com/shop/yarn:1")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
	db := vulnDB(t)
	for _, tt := range []struct {
		lockfiles string
		want      int
	}{{"false", 0}, {"true", 1}} {
		jsonPath := filepath.Join(t.TempDir(), "report.json")
		s := newStep(t, map[string]string{"input": path, "cache-dir": db, "offline": "true", "layer-cache": "false", "fail-build": "false", "json": jsonPath, "lockfiles": tt.lockfiles})
		if _, err := s.run(t); err != nil {
			t.Fatalf("lockfiles=%s: %v\n%s", tt.lockfiles, err, s.log)
		}
		raw, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		var rep report.Report
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, v := range rep.Vulnerabilities {
			if v.VulnerabilityID == "CVE-2021-44906" && v.PkgName == "minimist" && v.Location.Path == "srv/shop/yarn.lock" {
				got++
			}
		}
		if got != tt.want || len(rep.Vulnerabilities) != tt.want {
			t.Errorf("lockfiles=%s: %d findings (%d of minimist in yarn.lock), want %d", tt.lockfiles, len(rep.Vulnerabilities), got, tt.want)
		}
	}
	bad := newStep(t, map[string]string{"input": path, "lockfiles": "maybe"})
	if _, err := bad.run(t); err == nil {
		t.Error(`lockfiles: "maybe" was accepted`)
	}
}
