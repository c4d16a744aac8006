package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
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
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// run executes the taskguard command tree and returns its output and exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := NewRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), program.Code(err)
}

type debianFact struct {
	Package   string   `json:"package"`
	Source    string   `json:"source"`
	Installed string   `json:"installed"`
	Fixed     string   `json:"fixed"`
	CVEs      []string `json:"cves"`
}

func readFacts(t *testing.T, name string) []debianFact {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm", name))
	if err != nil {
		t.Fatal(err)
	}
	var facts []debianFact
	if err := json.Unmarshal(raw, &facts); err != nil {
		t.Fatal(err)
	}
	return facts
}

// dpkgStatusOf writes a dpkg status file listing the facts' installed packages.
func dpkgStatusOf(facts []debianFact) []byte {
	var b bytes.Buffer
	for _, f := range facts {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\n", f.Package)
		if f.Source != f.Package {
			fmt.Fprintf(&b, "Source: %s\n", f.Source)
		}
		fmt.Fprintf(&b, "Version: %s\nDescription: test\n multi-line\n\n", f.Installed)
	}
	return b.Bytes()
}

func layerFromFiles(t *testing.T, files map[string][]byte) v1.Layer {
	t.Helper()
	dir := t.TempDir()
	scantest.WriteFiles(t, dir, files)
	return scantest.DirLayer(t, dir)
}

func whiteoutLayer(t *testing.T, paths ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		dir, base := filepath.Split(p)
		if err := tw.WriteHeader(&tar.Header{Name: dir + ".wh." + base, Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func buildDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(testenv.SharedDir(t), "corpora", "advisories")
	out, errOut, code := run(t, "db", "build", "--advisories", src, "--cache-dir", dir)
	if code != 0 || !strings.Contains(out, "advisories") {
		t.Fatalf("db build: code %d\n%s%s", code, out, errOut)
	}
	return dir
}

func findingSet(rep *scan.Report, pkgType string) []string {
	var out []string
	for _, f := range rep.Findings {
		if f.PkgType == pkgType {
			out = append(out, f.PkgName+" "+f.InstalledVersion+" "+f.FixedVersion+" "+f.VulnerabilityID)
		}
	}
	sort.Strings(out)
	return out
}

func TestImageScan(t *testing.T) {
	dbDir := buildDB(t)
	facts := readFacts(t, "rootfs-ssl-expected-debian.json")
	goBin, err := os.ReadFile(scantest.GoBinary(t, "golang.org/x/text", "v0.3.5", "golang.org/x/text/language"))
	if err != nil {
		t.Fatal(err)
	}
	base := layerFromFiles(t, map[string][]byte{
		"etc/os-release":      []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
		"etc/debian_version":  []byte("12.12\n"),
		"var/lib/dpkg/status": dpkgStatusOf(facts),
	})
	app := layerFromFiles(t, map[string][]byte{
		"app/vulnapp":                            goBin,
		"app/node_modules/lodash/package.json":   []byte(`{"name":"lodash","version":"4.17.20"}`),
		"app/node_modules/minimist/package.json": []byte(`{"name":"minimist","version":"1.2.5"}`),
	})
	img, err := mutate.AppendLayers(empty.Image, base, app, whiteoutLayer(t, "app/node_modules/minimist"))
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	ref := reg + "/shop/web:1.0"
	push(t, ref, img)
	tarPath := filepath.Join(t.TempDir(), "web.tar")
	r, _ := name.ParseReference(ref)
	if err := tarball.WriteToFile(tarPath, r, img); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := run(t, "image", "scan", ref, "--cache-dir", dbDir, "--skip-db-update", "--format", "json")
	if code != 0 {
		t.Fatalf("scan: code %d: %s", code, errOut)
	}
	var rep scan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	digest, _ := img.Digest()
	if rep.SchemaVersion != scan.SchemaVersion || rep.Artifact.Digest != digest.String() || rep.Artifact.OS == nil || rep.Artifact.OS.Name != "12.12" {
		t.Errorf("artifact = %+v, schema %d", rep.Artifact, rep.SchemaVersion)
	}

	var wantDeb []string
	for _, f := range facts {
		cves := f.CVEs
		if len(cves) == 0 {
			cves = []string{vulndb.UpdateIDPrefix + f.Source + "-" + f.Fixed}
		}
		for _, c := range cves {
			wantDeb = append(wantDeb, f.Package+" "+f.Installed+" "+f.Fixed+" "+c)
		}
	}
	sort.Strings(wantDeb)
	if got := findingSet(&rep, "dpkg"); !reflect.DeepEqual(got, wantDeb) {
		t.Errorf("dpkg findings:\n got %q\nwant %q", got, wantDeb)
	}
	// x/text v0.3.5: fixed in 0.3.7, 0.3.8 and 0.39.0; GO-2020-0015 (fixed
	// in 0.3.3) does not apply.
	var xtext []string
	for _, f := range rep.Findings {
		if f.PkgName == "golang.org/x/text" {
			xtext = append(xtext, f.VulnerabilityID+" "+f.FixedVersion)
			if f.Location.Path != "app/vulnapp" {
				t.Errorf("x/text location = %+v", f.Location)
			}
		}
	}
	sort.Strings(xtext)
	if want := []string{"CVE-2021-38561 0.3.7", "CVE-2022-32149 0.3.8", "CVE-2026-56852 0.39.0"}; !reflect.DeepEqual(xtext, want) {
		t.Errorf("x/text findings = %q, want %q", xtext, want)
	}
	// lodash 4.17.20 has CVE-2021-23337 only; minimist was whited out.
	appDiff, _ := app.DiffID()
	npm := findingSet(&rep, "npm")
	if want := []string{"lodash 4.17.20 4.17.21 CVE-2021-23337"}; !reflect.DeepEqual(npm, want) {
		t.Errorf("npm findings = %q, want %q", npm, want)
	}
	for _, f := range rep.Findings {
		if f.PkgType == "npm" && (f.Location.Layer != appDiff.String() || f.Severity != "HIGH") {
			t.Errorf("lodash finding = %+v, want layer %s and severity HIGH", f, appDiff)
		}
	}
	stdlib := false
	for _, p := range rep.Packages {
		stdlib = stdlib || (p.Type == "gobinary" && p.Name == "stdlib")
	}
	if !stdlib {
		t.Error("no stdlib package from the Go binary")
	}
	if rep.Summary.Total != len(rep.Findings) || rep.Summary.High < 1 {
		t.Errorf("summary = %+v", rep.Summary)
	}

	// The tarball of the same image gives the same findings.
	out, errOut, code = run(t, "image", "scan", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "-f", "json")
	if code != 0 {
		t.Fatalf("scan tarball: code %d: %s", code, errOut)
	}
	var fromTar scan.Report
	if err := json.Unmarshal([]byte(out), &fromTar); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromTar.Findings, rep.Findings) {
		t.Errorf("tarball findings differ from registry findings")
	}

	t.Run("table and exit codes", func(t *testing.T) {
		out, _, code := run(t, "image", "scan", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "-f", "table", "--fail-on", "critical")
		if code != program.ExitOK {
			t.Errorf("--fail-on critical: code %d, want 0 (no critical finding)", code)
		}
		for _, want := range []string{"PACKAGE", "lodash", "CVE-2021-23337", "perl-base", "golang.org/x/text"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
		_, errOut, code := run(t, "image", "scan", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "-f", "table", "--fail-on", "HIGH")
		if code != program.ExitBlocked || !strings.Contains(errOut, "at or above HIGH") {
			t.Errorf("--fail-on HIGH: code %d (%s), want 1", code, errOut)
		}
	})

	t.Run("output file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.json")
		out, errOut, code := run(t, "image", "scan", ref, "--cache-dir", dbDir, "--skip-db-update", "-o", path, "--fail-on", "high")
		if code != program.ExitBlocked || out != "" {
			t.Fatalf("code %d, stdout %q, stderr %s", code, out, errOut)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var fromFile scan.Report
		if err := json.Unmarshal(raw, &fromFile); err != nil {
			t.Fatalf("--output is not JSON: %v", err)
		}
		if !reflect.DeepEqual(fromFile.Findings, rep.Findings) {
			t.Error("--output findings differ")
		}
	})

	t.Run("errors exit 2", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"missing image", []string{"image", "scan", reg + "/no/such:1", "--cache-dir", dbDir, "--skip-db-update"}, "fetch image"},
			{"no DB offline", []string{"image", "scan", "--input", tarPath, "--cache-dir", t.TempDir(), "--offline"}, "offline"},
			{"no DB skip update", []string{"image", "scan", "--input", tarPath, "--cache-dir", t.TempDir(), "--skip-db-update"}, "taskguard db update"},
			{"bad format", []string{"image", "scan", "--input", tarPath, "--cache-dir", dbDir, "--skip-db-update", "-f", "xml"}, "want table, json, cyclonedx or spdx-json"},
			{"two sources", []string{"image", "scan", ref, "--input", tarPath}, "only one of"},
			{"no source", []string{"image", "scan"}, "name an image"},
			{"bad severity", []string{"image", "scan", ref, "--fail-on", "severe"}, "unknown severity"},
			{"bad platform", []string{"image", "scan", ref, "--platform", "linux/amd64/v3/extra", "--cache-dir", dbDir, "--skip-db-update"}, "--platform"},
			{"not an image", []string{"image", "scan", "--input", filepath.Join(dbDir, "metadata.json"), "--cache-dir", dbDir, "--skip-db-update"}, "open tarball"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, errOut, code := run(t, tt.args...)
				if code != program.ExitError || !strings.Contains(errOut, tt.want) {
					t.Errorf("code %d, stderr %q; want 2 and %q", code, errOut, tt.want)
				}
			})
		}
	})
}

func TestDBUpdate(t *testing.T) {
	src := buildDB(t)
	art := scantest.DBArtifact(t, src, vulndb.LayerMediaType)
	reg := startRegistry(t)
	ref := reg + "/mirror/trivy-db:2"
	push(t, ref, art)

	dir := t.TempDir()
	out, errOut, code := run(t, "db", "update", "--db-repository", ref, "--cache-dir", dir)
	if code != 0 || !strings.Contains(out, "vulnerability DB updated") {
		t.Fatalf("db update: code %d\n%s%s", code, out, errOut)
	}
	want, _ := os.ReadFile(filepath.Join(src, "trivy.db"))
	got, _ := os.ReadFile(filepath.Join(dir, "trivy.db"))
	if !bytes.Equal(got, want) {
		t.Error("downloaded DB differs from the served one")
	}
	out, _, code = run(t, "db", "update", "--db-repository", ref, "--cache-dir", dir)
	if code != 0 || !strings.Contains(out, "not downloaded: cached DB is current") {
		t.Errorf("second db update: code %d: %s", code, out)
	}
	out, _, code = run(t, "db", "update", "--db-repository", ref, "--cache-dir", dir, "--force")
	if code != 0 || !strings.Contains(out, "vulnerability DB updated") {
		t.Errorf("forced db update: code %d: %s", code, out)
	}
	_, errOut, code = run(t, "db", "update", "--db-repository", reg+"/no/such:2", "--cache-dir", t.TempDir())
	if code != program.ExitError || !strings.Contains(errOut, "fetch vulnerability DB") {
		t.Errorf("missing artifact: code %d: %s", code, errOut)
	}
	// A scan that updates its DB first, from the mirror.
	_, errOut, code = run(t, "image", "scan", "--rootfs", t.TempDir(), "--db-repository", ref, "--cache-dir", t.TempDir(), "-f", "json")
	if code != 0 {
		t.Errorf("scan with DB update: code %d: %s", code, errOut)
	}
}

func TestImageScanLockfiles(t *testing.T) {
	dbDir := buildDB(t)
	root := t.TempDir()
	scantest.WriteFiles(t, root, map[string][]byte{
		"srv/shop/package-lock.json": []byte(`{"name":"shop","lockfileVersion":3,"packages":{"":{"name":"shop"},"node_modules/minimist":{"version":"1.2.5"},"node_modules/mkdirp/node_modules/minimist":{"version":"0.0.8","dev":true}}}`),
	})
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"default", nil, nil},
		{"lockfiles", []string{"--lockfiles"}, []string{"minimist 1.2.5 1.2.6, 0.2.4 CVE-2021-44906"}},
		// minimist 0.0.8 is a dev dependency's: reported only on request.
		{"include-dev-deps", []string{"--lockfiles", "--include-dev-deps"}, []string{"minimist 0.0.8 1.2.6, 0.2.4 CVE-2021-44906", "minimist 1.2.5 1.2.6, 0.2.4 CVE-2021-44906"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"image", "scan", "--rootfs", root, "--cache-dir", dbDir, "--skip-db-update", "-f", "json"}, tt.args...)
			out, errOut, code := run(t, args...)
			if code != 0 {
				t.Fatalf("code %d: %s", code, errOut)
			}
			var rep scan.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if got := findingSet(&rep, "npm"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("npm findings = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMissingImageFile: a local path that does not exist is reported as a
// missing file before any DB step (here there is no DB at all, and
// --offline would fail on it) and never becomes a registry pull.
func TestMissingImageFile(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "empty-cache")
	for _, args := range [][]string{
		{"image", "scan", "--offline", "--cache-dir", cache, "--input", filepath.Join(dir, "nope.tar")},
		{"image", "scan", "--offline", "--cache-dir", cache, "./nope.tar"},
		{"image", "scan", "--offline", "--cache-dir", cache, "--rootfs", filepath.Join(dir, "no-root")},
		{"ci", "--offline", "--cache-dir", cache, "--input", filepath.Join(dir, "nope.tar")},
		{"ci", "--offline", "--cache-dir", cache, "--image", "./nope.tar"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, code := run(t, args...)
			if code != 2 || !strings.Contains(stderr, "no such file") {
				t.Errorf("exit %d, stderr %q; want exit 2 and a missing file", code, stderr)
			}
			for _, wrong := range []string{"vulnerability", "https://", "database"} {
				if strings.Contains(stderr, wrong) {
					t.Errorf("stderr mentions %q: %s", wrong, stderr)
				}
			}
		})
	}
}
