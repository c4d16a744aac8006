package image

import (
	"archive/tar"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/internal/testenv"
)

// staticBinary returns a static ELF executable: Debian's busybox-static.
func staticBinary(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		testenv.Skip(t, "needs busybox-static (apt-get install busybox-static): %v", err)
	}
	if !isStaticELF(b) {
		testenv.Skip(t, "/bin/busybox is not static: install busybox-static")
	}
	return b
}

func TestBuildReproducible(t *testing.T) {
	bin := staticBinary(t)
	a, err := Build(Options{Binary: bin, Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{Binary: append([]byte(nil), bin...), Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two builds of the same input: %s != %s", da, db)
	}
	c, err := Build(Options{Binary: bin, Version: "v1.2.4"})
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Fatalf("another version label gave the same digest %s", dc)
	}
	// Written to an archive twice, the bytes are equal too.
	dir := t.TempDir()
	for _, f := range []string{"a.tar", "b.tar"} {
		ref, _ := name.NewTag("taskguard/defender:test")
		if err := tarball.WriteToFile(filepath.Join(dir, f), ref, a); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := os.ReadFile(filepath.Join(dir, "a.tar"))
	y, _ := os.ReadFile(filepath.Join(dir, "b.tar"))
	if string(x) != string(y) {
		t.Fatal("two archives of the same image differ")
	}
}

func TestBuildConfigAndLayer(t *testing.T) {
	bin := staticBinary(t)
	img, err := Build(Options{Binary: bin, Version: "v9", Source: "https://example.test/src"})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if got := strings.Join(c.Entrypoint, " "); got != "/var/lib/taskguard/defender sidecar" {
		t.Errorf("entrypoint %q", got)
	}
	if _, ok := c.Volumes[Volume]; !ok || len(c.Volumes) != 1 {
		t.Errorf("volumes %v, want only %s", c.Volumes, Volume)
	}
	if c.User != DefaultUser {
		t.Errorf("user %q, want %q", c.User, DefaultUser)
	}
	if c.Labels[LabelVersion] != "v9" || c.Labels[LabelSource] != "https://example.test/src" {
		t.Errorf("labels %v", c.Labels)
	}
	if !cf.Created.Time.Equal(Epoch) || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("created %v os %q arch %q", cf.Created, cf.OS, cf.Architecture)
	}
	// The flattened filesystem holds the binary, executable, and the volume
	// owned by the sidecar's user.
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found[h.Name] = h
		if h.Name == "var/lib/taskguard/defender" {
			body, _ := io.ReadAll(tr)
			if string(body) != string(bin) {
				t.Error("binary in the image differs from the input")
			}
		}
	}
	bh := found["var/lib/taskguard/defender"]
	if bh == nil || bh.Mode&0o111 == 0 {
		t.Fatalf("binary missing or not executable: %+v", bh)
	}
	if th := found["tmp"]; th == nil || th.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp %+v, want a sticky world-writable directory", th)
	}
	vh := found["var/lib/taskguard/"]
	if vh == nil {
		vh = found["var/lib/taskguard"]
	}
	if vh == nil || vh.Uid != 65532 || vh.Gid != 65532 {
		t.Fatalf("volume directory %+v, want owned by 65532:65532", vh)
	}
}

func TestPushToRegistry(t *testing.T) {
	bin := staticBinary(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	img, err := Build(Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/taskguard/defender:test")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
}

func TestBuildErrors(t *testing.T) {
	bin := staticBinary(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"empty", Options{}, "binary is empty"},
		{"not ELF", Options{Binary: []byte("#!/bin/sh\necho hi\n")}, "not a static ELF"},
		{"bad user", Options{Binary: bin, User: "nobody"}, "numeric uid:gid"},
		{"negative user", Options{Binary: bin, User: "-1:0"}, "numeric uid:gid"},
	}
	if dyn, err := os.ReadFile("/bin/ls"); err == nil && !isStaticELF(dyn) {
		tests = append(tests, struct {
			name string
			opts Options
			want string
		}{"dynamic", Options{Binary: dyn}, "not a static ELF"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}
