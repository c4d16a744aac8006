package action

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/internal/testenv"
)

// releaseWorkflow installs the action from a release (uses: ./ with
// version and releases-url), then tries a tampered release and a version
// that was never released: both must stop the step.
const releaseWorkflow = `name: taskguard-release
on: push
jobs:
  scan:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: release
        uses: ./
        with:
          version: ${{ env.TG_VERSION }}
          releases-url: ${{ env.RELEASES_URL }}
          cache: false
          input: ${{ env.IMAGE_TAR }}
          cache-dir: ${{ env.DB_DIR }}
          offline: true
          junit: ${{ env.OUT_DIR }}/release.junit.xml
      - id: tampered
        continue-on-error: true
        uses: ./
        with:
          version: ${{ env.TG_VERSION }}-tampered
          releases-url: ${{ env.RELEASES_URL }}
          cache: false
          input: ${{ env.IMAGE_TAR }}
          cache-dir: ${{ env.DB_DIR }}
          offline: true
      - id: unreleased
        continue-on-error: true
        uses: ./
        with:
          version: v9.9.9
          releases-url: ${{ env.RELEASES_URL }}
          cache: false
          input: ${{ env.IMAGE_TAR }}
          cache-dir: ${{ env.DB_DIR }}
          offline: true
      - name: record
        if: always()
        shell: bash
        run: |
          cat > "$OUT_DIR/steps.json" <<'JSON'
          {"release": {"outcome": "${{ steps.release.outcome }}", "outputs": ${{ toJSON(steps.release.outputs) }}},
           "tampered": {"outcome": "${{ steps.tampered.outcome }}", "outputs": {}},
           "unreleased": {"outcome": "${{ steps.unreleased.outcome }}", "outputs": {}}}
          JSON
`

const testVersion = "v0.0.1-test"

// TestWorkflowWithRelease builds a snapshot release with scripts/release.sh
// (linux/amd64 only), serves it from a loopback HTTP server standing in for
// the releases download URL, and runs a workflow through act that installs
// the action from it: downloaded, checksum-verified, not built; a tampered
// archive and an unreleased version stop the step. It reports how long the
// install took.
func TestWorkflowWithRelease(t *testing.T) {
	act := findAct(t)
	if testing.Short() {
		t.Skip("-short: the release build compiles four programs")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the snapshot release is built for linux/amd64 only")
	}
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	releases := filepath.Join(dir, "releases")
	dist := filepath.Join(releases, testVersion)
	build := exec.Command("bash", filepath.Join(root, "scripts", "release.sh"), testVersion, dist)
	build.Dir = root
	build.Env = append(os.Environ(), "TASKGUARD_RELEASE_TARGETS=linux/amd64")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release.sh: %v\n%s", err, out)
	}
	t.Logf("snapshot release (linux/amd64) built in %s", time.Since(start).Round(time.Second))
	checkRelease(t, dist)

	// The tampered release: the same checksums, one byte changed in the archive.
	tampered := filepath.Join(releases, testVersion+"-tampered")
	if err := os.MkdirAll(tampered, 0o755); err != nil {
		t.Fatal(err)
	}
	asset := "taskguard-action_" + testVersion + "_linux_amd64.tar.gz"
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(filepath.Join(dist, asset))
	if err != nil {
		t.Fatal(err)
	}
	archive[len(archive)/2] ^= 0xff
	tasset := strings.ReplaceAll(asset, testVersion, testVersion+"-tampered")
	if err := os.WriteFile(filepath.Join(tampered, "checksums.txt"), bytes.ReplaceAll(sums, []byte(asset), []byte(tasset)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tampered, tasset), archive, 0o644); err != nil {
		t.Fatal(err)
	}

	// The releases download URL, on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		served []string
	)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served = append(served, r.URL.Path)
		mu.Unlock()
		http.FileServer(http.Dir(releases)).ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	wf := filepath.Join(dir, "release.yml")
	if err := os.WriteFile(wf, []byte(releaseWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	out, home, toolCache := filepath.Join(dir, "out"), filepath.Join(dir, "home"), filepath.Join(dir, "toolcache")
	for _, d := range []string{out, home, toolCache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// No Go on the runner's PATH: a release install must not need it, and
	// an install that tried to build would fail.
	cmd := exec.Command(act, "push", "-W", wf, "-P", "ubuntu-latest=-self-hosted", "--local-repository", "actions/cache@v4="+cacheStandIn(t),
		"--env", "TG_VERSION="+testVersion, "--env", "RELEASES_URL=http://"+ln.Addr().String(),
		"--env", "IMAGE_TAR="+lodashImage(t), "--env", "DB_DIR="+vulnDB(t), "--env", "OUT_DIR="+out,
		"--env", "RUNNER_TOOL_CACHE="+toolCache, "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.Dir = root
	// act keeps its self-hosted tool cache under $XDG_CACHE_HOME/act (it
	// overrides RUNNER_TOOL_CACHE): a run on a machine where an earlier run
	// left the release there would install it from that cache, not from the
	// release server this test serves.
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))
	start = time.Now()
	log, err := cmd.CombinedOutput()
	total := time.Since(start)
	if err != nil {
		t.Fatalf("act: %v\n%s", err, log)
	}
	var steps map[string]stepRecord
	b, err := os.ReadFile(filepath.Join(out, "steps.json"))
	if err != nil {
		t.Fatalf("the record step wrote nothing: %v\n%s", err, log)
	}
	if err := json.Unmarshal(b, &steps); err != nil {
		t.Fatalf("steps.json: %v\n%s", err, b)
	}
	if s := steps["release"]; s.Outcome != "success" || s.Outputs["result"] != "passed" || s.Outputs["high"] != "1" {
		t.Errorf("step installed from the release: %+v", s)
	}
	if !fileExists(filepath.Join(out, "release.junit.xml")) {
		t.Error("the released taskguard-action wrote no JUnit report")
	}
	if s := steps["tampered"]; s.Outcome != "failure" {
		t.Errorf("tampered release: %+v, want failure", s)
	}
	if s := steps["unreleased"]; s.Outcome != "failure" {
		t.Errorf("unreleased version: %+v, want failure", s)
	}
	text := string(log)
	for _, want := range []string{
		"taskguard: downloading http://" + ln.Addr().String() + "/" + testVersion + "/" + asset,
		"taskguard: " + asset + " verified (sha256 ",
		"checksum mismatch for " + tasset + ": refusing to run it",
		"there is no release v9.9.9 at http://" + ln.Addr().String(),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("act log lacks %q", want)
		}
	}
	if strings.Contains(text, "building taskguard-action from source") {
		t.Error("the action built from source although a release was given")
	}
	// The cold install: a fresh tool cache, the archive over loopback.
	m := regexp.MustCompile(`taskguard-action ready \(release\) in (\d+) ms`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no install time in the act log")
	}
	ms, _ := strconv.Atoi(m[1])
	mu.Lock()
	defer mu.Unlock()
	t.Logf("install step (cold, from the release): %d ms; the whole act run (3 action steps): %s; served %v", ms, total.Round(time.Millisecond), served)
	if ms > 30_000 {
		t.Errorf("installing from the release took %d ms, want under 30 s", ms)
	}
	if t.Failed() {
		t.Logf("act log:\n%s", log)
	}
}

// checkRelease checks the snapshot release's files against its checksums.
func checkRelease(t *testing.T, dist string) {
	t.Helper()
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("checksums.txt line %q", line)
		}
		listed[f[1]] = true
	}
	check := exec.Command("sha256sum", "-c", "--strict", "checksums.txt")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	for _, p := range []string{"taskguard", "taskguard-static", "taskguard-console", "taskguard-action", "taskguard-defender"} {
		name := p + "_" + testVersion + "_linux_amd64.tar.gz"
		if !listed[name] {
			t.Errorf("%s missing from checksums.txt: %v", name, listed)
		}
	}
	// Linkage: taskguard loads ISA-L at run time (linked against glibc:
	// it has an ELF interpreter); taskguard-static, the action and the
	// defender are static (they run in Alpine/distroless containers and
	// job containers; the defender is copied into app containers).
	for _, c := range []struct {
		archive, binary string
		dynamic         bool
	}{
		{"taskguard", "taskguard", true},
		{"taskguard-static", "taskguard", false},
		{"taskguard-action", "taskguard-action", false},
		{"taskguard-defender", "taskguard-defender", false},
		{"taskguard-console", "taskguard-console", false},
	} {
		name := c.archive + "_" + testVersion + "_linux_amd64.tar.gz"
		interp := elfInterp(t, filepath.Join(dist, name), c.binary)
		if (interp != "") != c.dynamic {
			t.Errorf("%s: %s has ELF interpreter %q, want dynamic=%v", name, c.binary, interp, c.dynamic)
		}
	}
	// SBOMs: one CycloneDX document per archive (image scan --format
	// cyclonedx of the archive's binary).
	sboms := 0
	for name := range listed {
		if !strings.HasSuffix(name, ".cdx.json") {
			continue
		}
		sboms++
		var doc struct {
			BOMFormat  string `json:"bomFormat"`
			Components []struct {
				Name string `json:"name"`
			} `json:"components"`
		}
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil || json.Unmarshal(b, &doc) != nil || doc.BOMFormat != "CycloneDX" || len(doc.Components) == 0 {
			t.Errorf("SBOM %s: %v, format %q, %d components", name, err, doc.BOMFormat, len(doc.Components))
		}
	}
	t.Logf("release: %d files, %d SBOMs", len(listed), sboms)
	if sboms != 5 {
		t.Errorf("%d SBOMs in the release, want one per archive (5)", sboms)
	}
	if !listed["taskguard-defender-image_"+testVersion+"_linux_amd64.oci.tar"] {
		t.Errorf("the defender image's OCI layout is not in the release: %v", listed)
	}
	out, err := exec.Command("tar", "-tf", filepath.Join(dist, "taskguard-defender-image_"+testVersion+"_linux_amd64.oci.tar")).Output()
	if err != nil || !strings.Contains(string(out), "oci-layout") || !strings.Contains(string(out), "index.json") {
		t.Errorf("defender image archive is not an OCI layout: %v\n%s", err, out)
	}
}

// elfInterp returns the ELF interpreter ("" for a static executable) of
// the file binary in the tar.gz archive.
func elfInterp(t *testing.T, archive, binary string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s in the archive: %v", archive, binary, err)
		}
		if filepath.Base(h.Name) != binary {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %s is not ELF: %v", archive, binary, err)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				s, err := io.ReadAll(p.Open())
				if err != nil {
					t.Fatalf("%s: %s: %v", archive, binary, err)
				}
				return strings.TrimRight(string(s), "\x00")
			}
		}
		return ""
	}
}
