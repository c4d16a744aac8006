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
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/taskguard/taskguard/internal/testenv"
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
//
// Test processes of several packages call it at once (go test -p N): one
// holds an exclusive flock on <key>.lock while it builds, the others wait for
// it and then find the tree. The tree is built in a temporary folder beside
// the cache entry and renamed into place only when complete; whatever a failed
// (or killed) debootstrap left mounted inside its target is unmounted before the
// folder is removed, so a failure never poisons the next run.
func Debootstrap(t testing.TB, suite string, include []string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "debootstrap needs root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatalf("debootstrap is not installed (scripts/install-deps.sh installs it): %v", err)
	}
	cache := CacheDir(t, "debootstrap")
	include = slices.Clone(include)
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
	unlock, err := LockFile(filepath.Join(cache, key+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		return root // built by another process while this one waited
	}
	// Leftovers of an earlier run that died: unmount, then remove.
	stale, _ := filepath.Glob(filepath.Join(cache, key+".tmp-*"))
	for _, dir := range append(stale, root) {
		if err := removeTree(dir); err != nil {
			t.Fatalf("remove the unfinished debootstrap tree %s: %v", dir, err)
		}
	}
	mirror := os.Getenv("TASKGUARD_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--variant=minbase", "--cache-dir=" + debs}
	if len(include) > 0 {
		args = append(args, "--include="+strings.Join(include, ","))
	}
	args = append(args, suite, tmp, mirror)
	cmd := exec.Command("debootstrap", args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	runErr := cmd.Run()
	// debootstrap mounts proc (and sys) inside the target; a finished run
	// unmounts them, a failed one may not.
	if err := unmountUnder(tmp); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		if err := removeTree(tmp); err != nil {
			t.Logf("remove %s: %v", tmp, err)
		}
		t.Fatalf("debootstrap %s: %v\n%s", strings.Join(args, " "), runErr, tail(log.String(), 3000))
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatalf("move the debootstrap tree into place: %v", err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// LockFile takes an exclusive flock on path (created if needed), waiting for
// other processes that hold it, and returns the function that releases it.
// Tests use it around caches shared by the test binaries of several packages.
func LockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// unmountUnder detaches every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var points []string
	for _, mp := range mountPoints(string(b)) {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	// Deepest first: a mount inside another is detached before its parent.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// mountPoints lists the mount points of a /proc/self/mountinfo text.
func mountPoints(mountinfo string) []string {
	var points []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 {
			points = append(points, unescapeMountPath(f[4]))
		}
	}
	return points
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeTree unmounts whatever is mounted inside dir, then removes it.
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
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
