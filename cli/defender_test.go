package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/internal/testenv"
)

func TestDefenderImageCLI(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Skip(t, "needs busybox-static (apt-get install busybox-static) as a static binary")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	out := filepath.Join(dir, "defender.tar")
	push := host + "/taskguard/defender:ci"
	r := runTaskguard(t, "", nil, "defender", "image", "--binary", "/bin/busybox", "--output", out, "--push", push)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	digest := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("stdout %q, want the digest", r.stdout)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(push)
	pushed, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pushed.Digest(); d.String() != digest {
		t.Fatalf("registry holds %s, printed %s", d, digest)
	}
	// A docker archive keeps the config (the image ID), not the manifest.
	if a, b := configName(t, img), configName(t, pushed); a != b {
		t.Fatalf("archive image ID %s, pushed %s", a, b)
	}
	// Same input again: same digest.
	if r2 := runTaskguard(t, "", nil, "defender", "image", "--binary", "/bin/busybox", "--output", filepath.Join(dir, "again.tar")); strings.TrimSpace(r2.stdout) != digest {
		t.Fatalf("second build printed %q, want %s", r2.stdout, digest)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no destination", []string{"defender", "image", "--binary", "/bin/busybox"}, "give --output"},
		{"missing binary", []string{"defender", "image", "--binary", filepath.Join(dir, "nope"), "--output", out}, "no such file"},
		{"script binary", []string{"defender", "image", "--binary", "/etc/hostname", "--output", out}, "not a static ELF"},
		{"bad push ref", []string{"defender", "image", "--binary", "/bin/busybox", "--push", "UPPER CASE::"}, "--push"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runTaskguard(t, "", nil, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d stderr %q, want 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func configName(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
