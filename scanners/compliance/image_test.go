package compliance

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/taskguard/taskguard/scanners/image"
)

type tarFile struct {
	name string
	mode int64
	body string
}

func layer(t *testing.T, files []tarFile) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
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

func writeImage(t *testing.T, cfg v1.Config, history []v1.History, files []tarFile) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layer(t, files))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.History = history
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, nil, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func openImage(t *testing.T, path string) *image.Image {
	t.Helper()
	img, err := image.Open(context.Background(), path, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func TestCheckImageFindsEachProblem(t *testing.T) {
	path := writeImage(t,
		v1.Config{Env: []string{"PATH=/usr/bin", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, Labels: map[string]string{"maintainer": "x"}},
		[]v1.History{{CreatedBy: "/bin/sh -c #(nop) ADD https://example.com/tool.tar.gz /opt/"}, {CreatedBy: "/bin/sh -c #(nop) ADD file:abc in /"}},
		[]tarFile{
			{"etc/ssl/private/server.key", 0o600, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"},
			{"etc/ssl/certs/ca.pem", 0o644, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
			{"root/.aws/credentials", 0o600, "[default]\n"},
			{"usr/bin/passwd", 0o4755, "ELF"},
			{"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4", 0o644, "x"},
			{"var/lib/apt/lists/lock", 0o644, ""},
			{"usr/sbin/sshd", 0o755, "ELF"},
			{"etc/app.conf", 0o666, "x"},
			{"tmp/scratch", 0o666, "x"},
		})
	got, err := CheckImage(context.Background(), openImage(t, path), ImageInput{Reference: "registry.example.com/app:latest", Config: mustConfig(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range got {
		ids = append(ids, f.CheckID)
		if strings.Contains(f.Message, "wJalrXUtnFEMI") {
			t.Errorf("finding leaks the secret: %+v", f)
		}
	}
	want := []string{"TG-IMG-001", "TG-IMG-002", "TG-IMG-003", "TG-IMG-004", "TG-IMG-004", "TG-IMG-005", "TG-IMG-006", "TG-IMG-007", "TG-IMG-008", "TG-IMG-009", "TG-IMG-010"}
	if !slices.Equal(ids, want) {
		t.Fatalf("checks = %v\nwant     %v\nfindings: %+v", ids, want, got)
	}
	byID := map[string][]string{}
	for _, f := range got {
		byID[f.CheckID] = append(byID[f.CheckID], f.Target+" | "+f.Message)
	}
	for id, want := range map[string]string{
		"TG-IMG-003": "ENV AWS_SECRET_ACCESS_KEY holds a value under a credential-like name",
		"TG-IMG-005": "1 setuid/setgid files: /usr/bin/passwd",
		"TG-IMG-006": "/var/lib/apt/lists (1 files)",
		"TG-IMG-007": "ADD https://example.com/tool.tar.gz /opt/",
		"TG-IMG-010": "1 world-writable files: /etc/app.conf",
	} {
		if s := strings.Join(byID[id], "\n"); !strings.Contains(s, want) {
			t.Errorf("%s: %q lacks %q", id, s, want)
		}
	}
	if s := strings.Join(byID["TG-IMG-004"], "\n"); !strings.Contains(s, "/etc/ssl/private/server.key") || !strings.Contains(s, "/root/.aws/credentials") || strings.Contains(s, "ca.pem") {
		t.Errorf("TG-IMG-004: %s", s)
	}
}

func mustConfig(t *testing.T, path string) *v1.ConfigFile {
	cf, err := openImage(t, path).Config()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func TestCheckImageClean(t *testing.T) {
	path := writeImage(t,
		v1.Config{User: "10001", Env: []string{"PATH=/usr/bin", "DB_PASSWORD_FILE=/run/secrets/db"}, Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "/app", "health"}}},
		nil,
		[]tarFile{{"app", 0o755, "ELF"}, {"etc/passwd", 0o644, "app:x:10001:10001::/:/app\n"}})
	got, err := CheckImage(context.Background(), openImage(t, path), ImageInput{Reference: "registry.example.com/app@sha256:0123", Config: mustConfig(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("clean image has findings: %+v", got)
	}
}

// A root filesystem directory has no config: only the file checks run.
func TestCheckImageRootFS(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/sbin/sshd"), []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := image.Open(context.Background(), dir, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got, err := CheckImage(context.Background(), img, ImageInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CheckID != "TG-IMG-009" {
		t.Fatalf("%+v", got)
	}
}

func TestAddedURL(t *testing.T) {
	for in, want := range map[string]string{
		"/bin/sh -c #(nop) ADD https://x.example/a.tgz /opt/": "ADD https://x.example/a.tgz /opt/",
		"ADD http://x.example/a /a # buildkit":                "ADD http://x.example/a /a # buildkit",
		"/bin/sh -c #(nop) ADD file:0123 in / ":               "",
		"RUN curl https://x.example | sh":                     "",
		"":                                                    "",
	} {
		if got := addedURL(in); got != want {
			t.Errorf("addedURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCustomChecks(t *testing.T) {
	path := writeImage(t,
		v1.Config{User: "10001", Env: []string{"NODE_ENV=development", "PORT=8080"}, Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "true"}}},
		nil,
		[]tarFile{{"bin/dash", 0o755, "ELF"}, {"etc/nginx/conf.d/default.conf", 0o644, "server {}"}})
	custom := []CustomCheck{
		{Check: Check{ID: "ACME-1", Title: "nginx config present", Severity: SeverityHigh}, FileExists: "/etc/nginx/nginx.conf"},
		{Check: Check{ID: "ACME-2", Title: "no shell", Severity: SeverityMedium}, FileAbsent: "/bin/*sh"},
		{Check: Check{ID: "ACME-3", Title: "production mode", Severity: SeverityLow}, EnvName: "NODE_ENV", EnvMatch: regexp.MustCompile("^production$")},
		{Check: Check{ID: "ACME-4", Title: "has a PORT", Severity: SeverityLow}, EnvName: "PORT"},
		{Check: Check{ID: "ACME-5", Title: "site config present", Severity: SeverityLow}, FileExists: "/etc/nginx/conf.d/*.conf"},
		{Check: Check{ID: "ACME-6", Title: "has a region", Severity: SeverityLow}, EnvName: "AWS_REGION"},
	}
	got, err := CheckImage(context.Background(), openImage(t, path), ImageInput{Reference: "r/app@sha256:01", Config: mustConfig(t, path), Custom: custom})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range got {
		lines = append(lines, f.CheckID+" "+f.Target+" | "+f.Message)
		if f.Family != FamilyImage || f.Title == "" {
			t.Errorf("finding %+v", f)
		}
	}
	want := []string{
		"ACME-1 image | no file matches /etc/nginx/nginx.conf",
		"ACME-2 /bin/dash | file /bin/dash matches /bin/*sh, which must be absent",
		"ACME-3 image | ENV NODE_ENV does not match ^production$",
		"ACME-6 image | ENV AWS_REGION is not set",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("findings:\n got %q\nwant %q", lines, want)
	}
}

// TestObserverWithCustomChecks: an Observer made with custom checks
// evaluates them over the files it observed, like CheckImage.
func TestObserverWithCustomChecks(t *testing.T) {
	path := writeImage(t, v1.Config{User: "10001", Env: []string{"MODE=dev"}}, nil,
		[]tarFile{{"bin/dash", 0o755, "ELF"}})
	custom := []CustomCheck{
		{Check: Check{ID: "ACME-2", Title: "no shell", Severity: SeverityMedium}, FileAbsent: "/bin/*sh"},
		{Check: Check{ID: "ACME-3", Title: "prod", Severity: SeverityLow}, EnvName: "MODE", EnvMatch: regexp.MustCompile("^prod$")},
	}
	obs := NewObserverWith(custom)
	if err := openImage(t, path).Walk(context.Background(), obs.Observe); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range obs.Findings(ImageInput{Config: mustConfig(t, path)}) {
		if strings.HasPrefix(f.CheckID, "ACME-") {
			ids = append(ids, f.CheckID+" "+f.Target)
		}
	}
	if want := []string{"ACME-2 /bin/dash", "ACME-3 image"}; !slices.Equal(ids, want) {
		t.Errorf("custom findings = %q, want %q", ids, want)
	}
}
