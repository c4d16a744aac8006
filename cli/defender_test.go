package cli

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
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

	// An OCI layout of the same image: the release's artifact. Its
	// index.json is the image index (one platform here), so its digest is
	// what a push of the same binaries prints.
	oci := filepath.Join(dir, "oci")
	if r := runTaskguard(t, "", nil, "defender", "image", "--defender-binary", "/bin/busybox", "--oci-layout", oci, "--tag", "taskguard/defender:v1.2.3"); r.code != 0 {
		t.Fatalf("--oci-layout: exit %d: %s", r.code, r.stderr)
	}
	lp, err := layout.FromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("OCI layout index: %+v (%v)", im, err)
	}
	limg, err := lp.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := limg.ConfigFile(); err != nil || cf.Architecture != runtime.GOARCH || cf.OS != "linux" {
		t.Fatalf("OCI layout image: %+v (%v)", cf, err)
	}
	if d, _ := limg.Digest(); d.String() != digest {
		t.Fatalf("OCI layout image %s, the pushed image %s", d, digest)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no destination", []string{"defender", "image", "--binary", "/bin/busybox"}, "give --output"},
		{"missing binary", []string{"defender", "image", "--binary", filepath.Join(dir, "nope"), "--output", out}, "no such file"},
		{"script binary", []string{"defender", "image", "--binary", "/etc/hostname", "--output", out}, "not an ELF executable"},
		{"outside the source tree", []string{"defender", "image", "--module", dir, "--output", out}, "give the release's static binaries: --defender-binary linux/amd64=PATH"},
		{"wrong platform", []string{"defender", "image", "--defender-binary", "linux/arm64=/bin/busybox", "--output", out}, "linux/amd64 binary, not linux/arm64"},
		{"bad platform", []string{"defender", "image", "--defender-binary", "windows/amd64=/bin/busybox", "--output", out}, "want linux/ARCH"},
		{"platform with binaries", []string{"defender", "image", "--defender-binary", "/bin/busybox", "--platform", "linux/amd64", "--output", out}, "--platform chooses what to build from source"},
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

// tinyELF is a minimal static ELF64 executable header for machine m (it
// never runs; the image only carries it).
func tinyELF(m elf.Machine) []byte {
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: uint32(elf.EV_CURRENT),
		Entry: 0x400078, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	_ = binary.Write(&b, binary.LittleEndian, hdr)
	_ = binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000,
		Filesz: 128, Memsz: 128, Align: 0x1000,
	})
	b.Write(make([]byte, 128-b.Len()))
	return b.Bytes()
}

// TestDefenderImageIndexCLI: released binaries for linux/amd64 and
// linux/arm64, given with --defender-binary from outside the source tree,
// make an OCI image index: pushed, written as an OCI layout, printed digest
// the index's, the same twice; the docker archive holds this machine's image.
func TestDefenderImageIndexCLI(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	dir := t.TempDir()
	amd, arm := filepath.Join(dir, "defender-amd64"), filepath.Join(dir, "defender-arm64")
	if err := os.WriteFile(amd, tinyELF(elf.EM_X86_64), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(arm, tinyELF(elf.EM_AARCH64), 0o755); err != nil {
		t.Fatal(err)
	}
	push := strings.TrimPrefix(srv.URL, "http://") + "/taskguard/defender:multi"
	args := []string{"defender", "image", "--module", dir, "--defender-binary", "linux/arm64=" + arm, "--defender-binary", "linux/amd64=" + amd}
	r := runTaskguard(t, "", nil, append(args, "--push", push, "--oci-layout", filepath.Join(dir, "oci"), "--output", filepath.Join(dir, "d.tar"))...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	digest := strings.TrimSpace(r.stdout)
	ref, _ := name.ParseReference(push)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("the registry holds no index: %v", err)
	}
	if d, _ := idx.Digest(); d.String() != digest {
		t.Fatalf("registry index %s, printed %s", d, digest)
	}
	m, _ := idx.IndexManifest()
	var plats []string
	for _, d := range m.Manifests {
		plats = append(plats, d.Platform.String())
	}
	if strings.Join(plats, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %v", plats)
	}
	lp, err := layout.ImageIndexFromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := lp.Digest(); d.String() != digest {
		t.Errorf("the OCI layout's index.json is %s, want the index %s", d, digest)
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "d.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := img.ConfigFile(); cf.Architecture != runtime.GOARCH {
		t.Errorf("the archive holds linux/%s, want this machine's linux/%s", cf.Architecture, runtime.GOARCH)
	}
	// The same binaries in the other order: the same index.
	r2 := runTaskguard(t, "", nil, "defender", "image", "--module", dir, "--defender-binary", amd, "--defender-binary", arm, "--oci-layout", filepath.Join(dir, "oci2"))
	if strings.TrimSpace(r2.stdout) != digest {
		t.Fatalf("second build printed %q (%s), want %s", r2.stdout, r2.stderr, digest)
	}
}
