//go:build linux && (amd64 || arm64) && !nodlopen

package isal

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/image"
)

// childEnv makes the test binary a child that scans the docker archive it
// names (TestMain), so that each child chooses its inflater afresh.
const childEnv = "TASKGUARD_ISAL_TEST_CHILD"

// scanDone is what a child writes to stderr after its scan.
const scanDone = "child: scan done"

// childResult is what a child prints.
type childResult struct {
	Inflater string            // image.GzipInflater(), asked after the scan
	Files    map[string]string // path: SHA-256 of the content
	Err      string            // the scan's error
	Mapped   bool              // libisal.so.2 in /proc/self/maps after the scan
}

func TestMain(m *testing.M) {
	if archive := os.Getenv(childEnv); archive != "" {
		os.Exit(child(archive))
	}
	os.Exit(m.Run())
}

// child scans archive (or a root filesystem) with the image's debug log
// on stderr and prints a childResult on stdout.
func child(archive string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res := childResult{Files: map[string]string{}}
	ctx := context.Background()
	im, err := image.Open(ctx, archive, image.Options{Logger: logger})
	if err == nil {
		err = im.Walk(ctx, func(f image.File) error {
			b, err := f.ReadAll()
			if err != nil {
				return err
			}
			res.Files[f.Path] = fmt.Sprintf("%x", sha256.Sum256(b))
			return nil
		})
	}
	if err != nil {
		res.Err = err.Error()
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	res.Mapped = bytes.Contains(maps, []byte("/libisal.so.2"))
	fmt.Fprintln(os.Stderr, scanDone)
	res.Inflater = image.GzipInflater()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// runChild scans archive in a child with the extra environment.
func runChild(t *testing.T, archive string, env ...string) (childResult, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+archive)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %v: %v\n%s", env, err, stderr.String())
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child %v: %v in %q", env, err, out)
	}
	return res, stderr.String()
}

// writeArchive writes a docker archive with the gzip layers (blobs as
// given, not recompressed) and returns its path.
func writeArchive(t *testing.T, layers ...[]byte) string {
	t.Helper()
	img := empty.Image
	for _, b := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := name.ParseReference("example.com/isal:test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// tarFiles is what an image of the one uncompressed layer tarStream
// holds: each regular file's path and SHA-256 (read with archive/tar).
func tarFiles(t *testing.T, tarStream []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(tarStream))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(path.Clean(h.Name), "/")] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
}

// TestScanInflater: scanning a docker archive whose layer GNU tar and
// Debian's gzip made (two gzip members) goes through ISA-L when
// libisal.so.2 is installed — the child says "isal", logs it at debug
// level, and has the library mapped — and through the Go inflater when
// TASKGUARD_ISAL_LIBRARY names a missing library, a library that is not
// ISA-L, or "off"; every way gives the files archive/tar reads from the
// layer. A corrupt layer fails through ISA-L with an error naming it.
func TestScanInflater(t *testing.T) {
	layer := realTar(t, "src/encoding")
	half := len(layer) / 2
	first := realGzip(t, layer[:half], "-6")
	blob := append(bytes.Clone(first), realGzip(t, layer[half:], "-9")...)
	archive := writeArchive(t, blob)
	want := tarFiles(t, layer)
	if len(want) < 50 {
		t.Fatalf("the layer holds %d files", len(want))
	}

	cases := []struct {
		name, env, inflater, log string
	}{
		{"missing library", EnvLibrary + "=/nonexistent/libisal.so.2", "go", "/nonexistent/libisal.so.2"},
		{"not ISA-L", EnvLibrary + "=libc.so.6", "go", "libc.so.6"},
		{"off", EnvLibrary + "=off", "go", EnvLibrary + "=off"},
		{"installed", EnvLibrary + "=", "isal", "inflated by isal"},
	}
	for _, c := range cases {
		if c.inflater == "isal" {
			library(t) // skip (fail in CI) without libisal2
		}
		res, log := runChild(t, archive, c.env)
		if res.Err != "" {
			t.Fatalf("%s: scan: %s", c.name, res.Err)
		}
		if res.Inflater != c.inflater {
			t.Fatalf("%s: inflater %q, want %q; log:\n%s", c.name, res.Inflater, c.inflater, log)
		}
		if res.Mapped != (c.inflater == "isal") {
			t.Fatalf("%s: libisal.so.2 mapped: %v with inflater %q", c.name, res.Mapped, res.Inflater)
		}
		if strings.Count(log, "level=DEBUG msg=\"gzip layers are inflated") != 1 || !strings.Contains(log, c.log) {
			t.Fatalf("%s: want one debug line saying %q, log:\n%s", c.name, c.log, log)
		}
		if len(res.Files) != len(want) {
			t.Fatalf("%s: %d files, want %d", c.name, len(res.Files), len(want))
		}
		for p, sum := range want {
			if res.Files[p] != sum {
				t.Fatalf("%s: %s: %q, want %q", c.name, p, res.Files[p], sum)
			}
		}
	}

	// A layer whose first member's CRC-32 is wrong: the scan fails
	// through ISA-L with an error that names the layer. (The last
	// member's trailer lies past the tar's end marker, which the walk
	// does not inflate.)
	// (The archive is written intact, then damaged: writing computes
	// the diff ID from the layer.)
	badArchive := writeArchive(t, blob)
	b, err := os.ReadFile(badArchive)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, blob)
	if at < 0 {
		t.Fatal("the layer blob is not stored as is in the archive")
	}
	b[at+len(first)-6] ^= 0x55 // the first member's CRC-32
	if err := os.WriteFile(badArchive, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := stdlib(b[at : at+len(blob)]); err == nil {
		t.Fatal("compress/gzip reads the damaged layer")
	}
	res, log := runChild(t, badArchive)
	if res.Inflater != "isal" {
		t.Fatalf("corrupt layer: inflater %q; log:\n%s", res.Inflater, log)
	}
	if !strings.Contains(res.Err, "layer sha256:") || !strings.Contains(res.Err, ": gzip: invalid checksum (CRC-32 or size in the trailer; ISA-L)") || strings.Count(res.Err, "gzip") != 1 {
		t.Fatalf("corrupt layer: %q, want an ISA-L error naming the layer", res.Err)
	}
}

// TestNoGzipNoLoad: a scan that inflates no gzip layer (a root
// filesystem here; a re-scan from the layer cache alike) neither loads
// the library nor logs a choice.
func TestNoGzipNoLoad(t *testing.T) {
	library(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, log := runChild(t, root)
	if res.Err != "" || len(res.Files) != 1 {
		t.Fatalf("scan of a root filesystem: %q, %d files", res.Err, len(res.Files))
	}
	scanLog, _, _ := strings.Cut(log, scanDone)
	if res.Mapped || strings.Contains(scanLog, "gzip layers are inflated") {
		t.Fatalf("no gzip layer read, yet libisal.so.2 mapped: %v; log:\n%s", res.Mapped, log)
	}
	if res.Inflater != "isal" || !strings.Contains(log, "inflated by isal") {
		t.Fatalf("GzipInflater() afterwards = %q, want isal; log:\n%s", res.Inflater, log)
	}
}

// TestRegisteredInProcess: importing the package registers the inflater:
// in this test process the scanner inflates with ISA-L.
func TestRegisteredInProcess(t *testing.T) {
	library(t)
	if os.Getenv(EnvLibrary) != "" {
		testenv.Skip(t, "%s is set in the environment", EnvLibrary)
	}
	if got := image.GzipInflater(); got != "isal" {
		t.Fatalf("image.GzipInflater() = %q, want isal", got)
	}
}
