package scantest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CacheDir returns $XDG_CACHE_HOME/taskguard/<name> (or the platform's user
// cache directory), created.
func CacheDir(t testing.TB, name string) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("user cache dir: %v", err)
	}
	dir := filepath.Join(base, "taskguard", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// GoBinary builds a small Go program that imports pkg from module mod at
// version (for example "golang.org/x/text", "v0.3.5", "golang.org/x/text/language")
// and returns its path. Modules come through the Go module proxy.
func GoBinary(t testing.TB, mod, version, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	gomod := fmt.Sprintf("module example.com/vulnapp\n\ngo 1.22\n\nrequire %s %s\n", mod, version)
	main := fmt.Sprintf("package main\n\nimport (\n\t\"fmt\"\n\n\tdep %q\n)\n\nvar _ = dep.%s\n\nfunc main() { fmt.Println(\"vulnapp\") }\n", pkg, exportedName(pkg))
	for name, body := range map[string]string{"go.mod": gomod, "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "vulnapp")
	cmd := exec.Command("go", "build", "-mod=mod", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a Go binary with %s@%s: %v\n%s", mod, version, err, b)
	}
	return out
}

// exportedName returns a name the import of pkg can use, so that the
// program really links the package.
func exportedName(pkg string) string {
	switch pkg {
	case "golang.org/x/text/language":
		return "English"
	}
	return "_"
}

// Debootstrap returns a Debian root filesystem made with
// `debootstrap --variant=minbase` (plus the include packages), cached under
// CacheDir("debootstrap") so that later runs take no time. It needs root and
// the debootstrap program; the mirror is $TASKGUARD_DEBIAN_MIRROR or
// http://deb.debian.org/debian.
func Debootstrap(t testing.TB, suite string, include []string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("debootstrap needs root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatalf("debootstrap is not installed (scripts/install-deps.sh installs it): %v", err)
	}
	cache := CacheDir(t, "debootstrap")
	sort.Strings(include)
	key := suite + "-minbase"
	if len(include) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(include, ",")))
		key += "-" + hex.EncodeToString(sum[:6])
	}
	root := filepath.Join(cache, key)
	done := filepath.Join(cache, key+".done")
	if _, err := os.Stat(done); err == nil {
		return root
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	mirror := os.Getenv("TASKGUARD_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--variant=minbase", "--cache-dir=" + debs}
	if len(include) > 0 {
		args = append(args, "--include="+strings.Join(include, ","))
	}
	args = append(args, suite, root, mirror)
	cmd := exec.Command("debootstrap", args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("debootstrap %s: %v\n%s", strings.Join(args, " "), err, tail(log.String(), 3000))
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// DirLayer packs the directory dir as an uncompressed image layer (regular
// files, directories and symbolic links), written to a temporary file.
func DirLayer(t testing.TB, dir string) v1.Layer {
	t.Helper()
	l, err := PackDir(dir, t.TempDir(), tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// PackDir packs the directory dir as an image layer (regular files,
// directories and symbolic links; no user or group names) in a tar file
// created in tmpDir. The benchmark image builder uses it too.
func PackDir(dir, tmpDir string, opts ...tarball.LayerOption) (v1.Layer, error) {
	f, err := os.CreateTemp(tmpDir, "layer-*.tar")
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular(), info.IsDir():
		default:
			return nil // devices, sockets, fifos
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pack %s as a layer: %w", dir, err)
	}
	return tarball.LayerFromFile(f.Name(), opts...)
}

// WriteFiles writes path -> content files (with mode 0644, or 0755 for
// contents that start with an ELF header) under dir.
func WriteFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := fs.FileMode(0o644)
		if bytes.HasPrefix(body, []byte("\x7fELF")) {
			mode = 0o755
		}
		if err := os.WriteFile(full, body, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// DBArtifact packs the vulnerability DB in dir (trivy.db and metadata.json)
// as the OCI artifact trivy-db publishes, with its layer of media type mt
// (vulndb.LayerMediaType, or another to test a refusal).
func DBArtifact(t testing.TB, dir string, mt types.MediaType) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range []string{"trivy.db", "metadata.json"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.aquasec.trivy.config.v1+json")
	img, err := mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(buf.Bytes(), mt)})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// SpoilLayers copies the docker archive at src to dst with every layer
// blob replaced by bytes that are no layer: a walk that reads a layer
// fails.
func SpoilLayers(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	type entry struct {
		hdr  *tar.Header
		body []byte
	}
	var entries []entry
	layers := map[string]bool{}
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "manifest.json" {
			var m []struct{ Layers []string }
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, l := range m[0].Layers {
				layers[l] = true
			}
		}
		entries = append(entries, entry{hdr, b})
	}
	tw := tar.NewWriter(out)
	for _, e := range entries {
		if layers[e.hdr.Name] {
			e.body = []byte("\x1f\x8b this is not a layer")
			e.hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
