package action

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/taskguard/taskguard/scanners/report"
)

// TestLockfilesInput: the "lockfiles" input makes the scan read an
// application's yarn.lock (minimist 1.2.5, CVE-2021-44906 in the corpus);
// without it only installed packages count.
func TestLockfilesInput(t *testing.T) {
	path := yarnImage(t, nil)
	db := vulnDB(t)
	for _, tt := range []struct {
		lockfiles string
		want      int
	}{{"false", 0}, {"true", 1}} {
		if got := minimistFindings(t, db, path, map[string]string{"lockfiles": tt.lockfiles}); got != tt.want {
			t.Errorf("lockfiles=%s: %d findings, want %d of minimist in yarn.lock", tt.lockfiles, got, tt.want)
		}
	}
	bad := newStep(t, map[string]string{"input": path, "lockfiles": "maybe"})
	if _, err := bad.run(t); err == nil {
		t.Error(`lockfiles: "maybe" was accepted`)
	}

	// minimist as a development dependency of the app: left out unless
	// include-dev-deps.
	dev := yarnImage(t, map[string]string{"srv/shop/package.json": `{"name":"shop","devDependencies":{"minimist":"^1.2.5"}}`})
	for _, tt := range []struct {
		includeDev string
		want       int
	}{{"false", 0}, {"true", 1}} {
		if got := minimistFindings(t, db, dev, map[string]string{"lockfiles": "true", "include-dev-deps": tt.includeDev}); got != tt.want {
			t.Errorf("include-dev-deps=%s: %d findings, want %d of minimist in yarn.lock", tt.includeDev, got, tt.want)
		}
	}
}

// minimistFindings scans the image at path with the step's inputs and
// counts the findings, failing unless each is minimist's CVE-2021-44906 in
// the app's yarn.lock.
func minimistFindings(t *testing.T, db, path string, inputs map[string]string) int {
	t.Helper()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	in := map[string]string{"input": path, "cache-dir": db, "offline": "true", "layer-cache": "false", "fail-build": "false", "json": jsonPath}
	for k, v := range inputs {
		in[k] = v
	}
	s := newStep(t, in)
	if _, err := s.run(t); err != nil {
		t.Fatalf("%v: %v\n%s", inputs, err, s.log)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Vulnerabilities {
		if v.VulnerabilityID != "CVE-2021-44906" || v.PkgName != "minimist" || v.Location.Path != "srv/shop/yarn.lock" {
			t.Errorf("%v: unexpected finding %s %s in %s", inputs, v.VulnerabilityID, v.PkgName, v.Location.Path)
		}
	}
	return len(rep.Vulnerabilities)
}

// yarnImage writes a docker-archive of a Debian 12 image with an app whose
// yarn.lock holds minimist 1.2.5 (CVE-2021-44906 in the corpus), plus extra.
func yarnImage(t *testing.T, extra map[string]string) string {
	t.Helper()
	files := map[string]string{
		"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status": "",
		"srv/shop/yarn.lock":  "# yarn lockfile v1\n\n\nminimist@^1.2.5:\n  version \"1.2.5\"\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	return imageTarball(t, "registry.example.com/shop/yarn:1", files)
}
