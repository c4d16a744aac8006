package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec describes a test image.
type Spec struct {
	// Files maps an absolute path in the image to its content (mode 0755).
	Files map[string]string
	// HostBinaries are copied from the host to the same path under /bin,
	// with the shared libraries ldd lists; they shadow busybox applets.
	HostBinaries []string
	// Links maps a path in the image to a symlink target.
	Links map[string]string
	// Config is the image config (Entrypoint, Cmd, Volumes, Env...).
	Config v1.Config
}

// Build writes a docker-archive of the image named ref into t.TempDir and
// returns its path. It skips the test when busybox-static is missing.
func Build(t testing.TB, ref string, spec Spec) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs busybox-static (apt-get install busybox-static): %v", err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	files := map[string]entry{
		"bin/busybox": {mode: 0o755, body: bb},
		"tmp/":        {mode: 0o1777, dir: true},
		"etc/passwd":  {mode: 0o644, body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")},
		"etc/group":   {mode: 0o644, body: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			files["bin/"+applet] = entry{link: "busybox"}
		}
	}
	for _, b := range spec.HostBinaries {
		if err := addHostBinary(files, b); err != nil {
			t.Skipf("host binary %s: %v", b, err)
		}
	}
	for p, body := range spec.Files {
		files[strings.TrimPrefix(p, "/")] = entry{mode: 0o755, body: []byte(body)}
	}
	for p, target := range spec.Links {
		files[strings.TrimPrefix(p, "/")] = entry{link: target}
	}
	layer, err := layer(files)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = spec.Config
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=/bin"}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

type entry struct {
	mode int64
	body []byte
	link string
	dir  bool
}

// addHostBinary copies /bin/NAME (resolved) and its ldd libraries.
func addHostBinary(files map[string]entry, bin string) error {
	src, err := exec.LookPath(bin)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	files["bin/"+filepath.Base(bin)] = entry{mode: 0o755, body: body}
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		return nil // static
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if !strings.HasPrefix(f, "/") {
				continue
			}
			real, err := filepath.EvalSymlinks(f)
			if err != nil {
				return err
			}
			lib, err := os.ReadFile(real)
			if err != nil {
				return err
			}
			files[strings.TrimPrefix(f, "/")] = entry{mode: 0o755, body: lib}
		}
	}
	return nil
}

func layer(files map[string]entry) (v1.Layer, error) {
	dirs := map[string]bool{}
	for p := range files {
		for d := filepath.Dir(strings.TrimSuffix(p, "/")); d != "." && d != "/"; d = filepath.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	for d := range dirs {
		if _, ok := files[d]; !ok {
			files[d] = entry{mode: 0o755, dir: true}
		}
	}
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		e := files[p]
		h := &tar.Header{Name: p, Mode: e.mode}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}
