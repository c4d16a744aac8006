package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type entry struct {
	name     string
	body     string
	typeflag byte
	link     string
	mode     int64
}

func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typeflag
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func layerOf(t testing.TB, entries []entry) v1.Layer {
	t.Helper()
	b := tarBytes(t, entries)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t testing.TB, layers ...[]entry) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		var err error
		img, err = mutate.AppendLayers(img, layerOf(t, l))
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// collect walks im and returns path -> content of every file.
func collect(t *testing.T, im *Image) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := im.Walk(context.Background(), func(f File) error {
		b, err := f.ReadAll()
		if err != nil {
			return err
		}
		got[f.Path] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return got
}

var (
	lowerLayer = []entry{
		{name: "etc/", typeflag: tar.TypeDir},
		{name: "etc/removed", body: "gone"},
		{name: "etc/changed", body: "old"},
		{name: "etc/kept", body: "kept"},
		{name: "var/lib/x/", typeflag: tar.TypeDir},
		{name: "var/lib/x/deep", body: "gone too"},
		{name: "opq/", typeflag: tar.TypeDir},
		{name: "opq/old", body: "hidden by opaque"},
		{name: "became-file/inner", body: "hidden by a file"},
		{name: "./dot/slash", body: "dot slash"},
	}
	upperLayer = []entry{
		{name: "etc/.wh.removed", typeflag: tar.TypeReg},
		{name: "etc/changed", body: "new"},
		{name: "var/lib/.wh.x", typeflag: tar.TypeReg},
		{name: "opq/.wh..wh..opq", typeflag: tar.TypeReg},
		{name: "opq/new", body: "visible"},
		{name: "became-file", body: "a file now"},
		{name: "link", typeflag: tar.TypeSymlink, link: "/etc/kept"},
	}
	wantFlat = map[string]string{
		"etc/changed": "new",
		"etc/kept":    "kept",
		"opq/new":     "visible",
		"became-file": "a file now",
		"dot/slash":   "dot slash",
	}
)

func TestWalkFlattensWhiteoutsAndOpaqueDirs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img.tar")
	ref, _ := name.ParseReference("example.test/flat:1")
	if err := tarball.WriteToFile(path, ref, imageOf(t, lowerLayer, upperLayer)); err != nil {
		t.Fatal(err)
	}
	im, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if im.Kind != KindTarball {
		t.Errorf("kind = %s, want %s", im.Kind, KindTarball)
	}
	assertFiles(t, collect(t, im), wantFlat)
}

func assertFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	keys := func(m map[string]string) []string {
		var k []string
		for p := range m {
			k = append(k, p)
		}
		sort.Strings(k)
		return k
	}
	if strings.Join(keys(got), ",") != strings.Join(keys(want), ",") {
		t.Fatalf("files = %v, want %v", keys(got), keys(want))
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s = %q, want %q", p, got[p], w)
		}
	}
}

func TestSourcesAgree(t *testing.T) {
	ctx := context.Background()
	img := imageOf(t, lowerLayer, upperLayer)
	dir := t.TempDir()

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	regRef := strings.TrimPrefix(srv.URL, "http://") + "/test/flat:1"
	ref, err := name.ParseReference(regRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	tarPath := filepath.Join(dir, "img.tar")
	if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
		t.Fatal(err)
	}

	layoutDir := filepath.Join(dir, "layout")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}

	rootfs := filepath.Join(dir, "rootfs")
	for p, body := range wantFlat {
		full := filepath.Join(rootfs, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/kept", filepath.Join(rootfs, "link")); err != nil {
		t.Fatal(err)
	}

	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ref  string
		kind Kind
	}{
		{"registry", regRef, KindRegistry},
		{"tarball", tarPath, KindTarball},
		{"oci layout", layoutDir, KindLayout},
		{"rootfs", rootfs, KindRootFS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Open(ctx, tt.ref, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if im.Kind != tt.kind {
				t.Errorf("kind = %s, want %s", im.Kind, tt.kind)
			}
			if got, _ := im.Digest(); tt.kind != KindRootFS && got != digest.String() {
				t.Errorf("digest = %s, want %s", got, digest)
			}
			assertFiles(t, collect(t, im), wantFlat)
		})
	}
}

func TestWalkSkipsUnsafeEntries(t *testing.T) {
	var logs bytes.Buffer
	im := &Image{Name: "unsafe", img: imageOf(t, []entry{
		{name: "../../etc/passwd", body: "escape"},
		{name: "a/../../b", body: "escape"},
		{name: "/abs/file", body: "rooted"},
		{name: "hard", typeflag: tar.TypeLink, link: "abs/file"},
		{name: "ok", body: "ok"},
	}), max: DefaultMaxFileSize, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	assertFiles(t, collect(t, im), map[string]string{"abs/file": "rooted", "ok": "ok"})
	if !strings.Contains(logs.String(), "unsafe path") {
		t.Errorf("no warning about the unsafe entries; log: %s", logs.String())
	}
}

func TestWalkSkipsLargeFiles(t *testing.T) {
	var logs bytes.Buffer
	im := &Image{Name: "large", img: imageOf(t, []entry{
		{name: "big", body: strings.Repeat("x", 100)},
		{name: "small", body: "x"},
	}), max: 10, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	assertFiles(t, collect(t, im), map[string]string{"small": "x"})
	if !strings.Contains(logs.String(), "size limit") {
		t.Errorf("no warning about the large file; log: %s", logs.String())
	}
}

func TestWalkCorruptLayers(t *testing.T) {
	good := tarBytes(t, []entry{{name: "a", body: strings.Repeat("a", 4096)}, {name: "b", body: "b"}})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(good)
	_ = zw.Close()
	tests := []struct {
		name string
		data []byte
	}{
		{"truncated tar", good[:1000]},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 300)},
		{"truncated gzip", gz.Bytes()[:gz.Len()/2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tt.data)), nil })
			if err != nil {
				// A layer too broken to even hash is a clear error too.
				return
			}
			img, err := mutate.AppendLayers(empty.Image, l)
			if err != nil {
				t.Fatal(err)
			}
			im := &Image{Name: "corrupt", img: img, max: DefaultMaxFileSize, logger: slog.Default()}
			err = im.Walk(context.Background(), func(f File) error {
				_, err := f.ReadAll()
				return err
			})
			if err == nil {
				t.Fatal("walk of a corrupt layer succeeded")
			}
			if !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not say the image is corrupt", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	notTar := filepath.Join(t.TempDir(), "not.tar")
	if err := os.WriteFile(notTar, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, ref string
		want      string
	}{
		{"not a tarball", notTar, "open tarball"},
		{"bad reference", "UPPER/Case:tag:bad", "parse image reference"},
		{"missing image", strings.TrimPrefix(srv.URL, "http://") + "/no/such:1", "fetch image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(ctx, tt.ref, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestWalkStopsOnCallbackError(t *testing.T) {
	im := &Image{Name: "stop", img: imageOf(t, []entry{{name: "a", body: "a"}, {name: "b", body: "b"}}), max: 10, logger: slog.Default()}
	stop := errors.New("stop here")
	n := 0
	err := im.Walk(context.Background(), func(File) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err = %v after %d calls, want %v after 1", err, n, stop)
	}
}

// fuzzLayerMax bounds FuzzLayer's inputs: the fuzzer minimizes every
// new input by running it up to len(input)² times (for at most 60 s),
// and minimizing tars of 10 KiB stalled a 45 s run; a tar of a few
// entries is what the target is about.
const fuzzLayerMax = 8 << 10

// fuzzSeedTar is a tar of entries without its end marker (the reader
// stops at the end of its input alike): a smaller seed.
func fuzzSeedTar(t testing.TB, entries []entry) []byte {
	b := tarBytes(t, entries)
	return b[:len(b)-1024]
}

func FuzzLayer(f *testing.F) {
	boundMinimize(f)
	for _, s := range [][]byte{
		fuzzSeedTar(f, lowerLayer[:4]),
		fuzzSeedTar(f, lowerLayer[4:7]),
		fuzzSeedTar(f, lowerLayer[7:]),
		fuzzSeedTar(f, upperLayer[:4]),
		fuzzSeedTar(f, upperLayer[4:]),
		fuzzSeedTar(f, []entry{{name: "../x", body: "x"}, {name: "a/.wh..wh..opq"}}),
		[]byte("not a tar"),
	} {
		if len(s) > fuzzLayerMax/2 {
			f.Fatalf("seed of %d bytes", len(s))
		}
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Cut, not skipped: an early return would be new coverage, and
		// the fuzzer would spend its minutes minimizing the first long
		// input to one that still takes it.
		data = data[:min(len(data), fuzzLayerMax)]
		fl := newFlattener(1<<16, slog.New(slog.DiscardHandler))
		_ = fl.layer(context.Background(), "fuzz", bytes.NewReader(data), func(f File) error {
			if strings.HasPrefix(f.Path, "/") || strings.Contains("/"+f.Path+"/", "/../") {
				t.Fatalf("unsafe path %q passed on", f.Path)
			}
			_, err := f.ReadAll()
			return err
		})
	})
}

// TestDockerSaveArchive reads an archive laid out as `docker save` writes
// it: uncompressed layer.tar entries named in manifest.json.
func TestDockerSaveArchive(t *testing.T) {
	img := imageOf(t, lowerLayer, upperLayer)
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	entries := []entry{
		{name: "config.json", body: string(rawCfg)},
		{name: "manifest.json", body: `[{"Config":"config.json","RepoTags":["example.test/saved:1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]`},
		{name: "aaa/layer.tar", body: string(tarBytes(t, lowerLayer))},
		{name: "bbb/layer.tar", body: string(tarBytes(t, upperLayer))},
	}
	plain := tarBytes(t, entries)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{{"saved.tar", plain}, {"image.tar.gz", gz.Bytes()}} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.name)
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if im.Kind != KindTarball || len(im.tarLayers) != 2 {
				t.Fatalf("kind %s, archive layers = %v", im.Kind, im.tarLayers)
			}
			assertFiles(t, collect(t, im), wantFlat)
			got := collectLayers(t, im, 2)
			assertFiles(t, got, wantFlat)
			if _, err := im.Digest(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMissingLocalPath: a path that does not exist is a missing file, not a
// registry pull of "./nope.tar".
func TestMissingLocalPath(t *testing.T) {
	dir := t.TempDir()
	for _, ref := range []string{"./nope.tar", filepath.Join(dir, "nope.tar"), "nope.tar.gz", "../x/image.tar", filepath.Join(dir, "rootfs")} {
		t.Run(ref, func(t *testing.T) {
			if err := CheckSource(ref, ""); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such file") {
				t.Errorf("CheckSource: err = %v, want a missing file", err)
			}
			_, err := Open(context.Background(), ref, Options{})
			if err == nil || !strings.Contains(err.Error(), "no such file") || strings.Contains(err.Error(), "https://") {
				t.Errorf("Open: err = %v, want a missing file", err)
			}
		})
	}
	for _, kind := range []Kind{KindTarball, KindLayout, KindRootFS} {
		if err := CheckSource("registry.example.com/app:1", kind); !errors.Is(err, ErrNotFound) {
			t.Errorf("CheckSource(%s): err = %v, want a missing file", kind, err)
		}
	}
	for _, ref := range []string{"alpine", "registry.example.com/app:1.0", "localhost:5000/x/y:1.tar"} {
		if LocalPath(ref) {
			t.Errorf("LocalPath(%q) = true, want a registry reference", ref)
		}
		if err := CheckSource(ref, ""); err != nil {
			t.Errorf("CheckSource(%q) = %v", ref, err)
		}
	}
}

func TestPlatformFromIndex(t *testing.T) {
	ctx := context.Background()
	amd := imageOf(t, []entry{{name: "arch", body: "amd64"}})
	arm := imageOf(t, []entry{{name: "arch", body: "arm64"}})
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	regRef := strings.TrimPrefix(srv.URL, "http://") + "/multi/arch:1"
	ref, err := name.ParseReference(regRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(t.TempDir(), "layout")
	if _, err := layout.Write(layoutDir, idx); err != nil {
		t.Fatal(err)
	}
	armDigest, _ := arm.Digest()
	amdDigest, _ := amd.Digest()
	for _, src := range []string{regRef, layoutDir} {
		for _, tt := range []struct {
			platform *v1.Platform
			want     string
			digest   v1.Hash
		}{
			{&v1.Platform{OS: "linux", Architecture: "arm64"}, "arm64", armDigest},
			{&v1.Platform{OS: "linux", Architecture: "amd64"}, "amd64", amdDigest},
		} {
			im, err := Open(ctx, src, Options{Platform: tt.platform})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := im.Digest(); got != tt.digest.String() {
				t.Errorf("%s %s: digest %s, want %s", src, tt.want, got, tt.digest)
			}
			assertFiles(t, collect(t, im), map[string]string{"arch": tt.want})
		}
	}
	if _, err := Open(ctx, layoutDir, Options{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing platform in layout: err = %v", err)
	}
	// A single-platform image says what it is in its config.
	armOnly, err := mutate.ConfigFile(arm, &v1.ConfigFile{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	single := strings.TrimPrefix(srv.URL, "http://") + "/single/arch:1"
	sref, _ := name.ParseReference(single)
	if err := remote.Write(sref, armOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, single, Options{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}); !errors.Is(err, ErrPlatform) {
		t.Errorf("single arm64 image opened as amd64: err = %v", err)
	}
	if _, err := Open(ctx, single, Options{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}); err != nil {
		t.Errorf("single arm64 image as arm64: %v", err)
	}
}

// TestReadSized: a stream read with its size known gives the same bytes as
// io.ReadAll whatever the size says, in one allocation when it is right.
func TestReadSized(t *testing.T) {
	content := text(100<<10, 7)
	boom := errors.New("boom")
	cases := []struct {
		name string
		r    func() io.Reader
		size int64
		want []byte
		err  error
	}{
		{"exact size", func() io.Reader { return bytes.NewReader(content) }, int64(len(content)), content, nil},
		{"size too small (file grew)", func() io.Reader { return bytes.NewReader(content) }, 10, content, nil},
		{"size too large (short stream)", func() io.Reader { return bytes.NewReader(content) }, 1 << 30, content, nil},
		{"negative size", func() io.Reader { return bytes.NewReader(content) }, -1, content, nil},
		{"empty", func() io.Reader { return bytes.NewReader(nil) }, 0, []byte{}, nil},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(content)) }, int64(len(content)), content, nil},
		{"error mid-stream", func() io.Reader { return io.MultiReader(bytes.NewReader(content[:100]), iotest.ErrReader(boom)) }, int64(len(content)), content[:100], boom},
	}
	for _, c := range cases {
		got, err := readSized(c.r(), c.size)
		if !errors.Is(err, c.err) || !bytes.Equal(got, c.want) {
			t.Fatalf("%s: %d bytes, %v; want %d bytes, %v", c.name, len(got), err, len(c.want), c.err)
		}
	}
	r := bytes.NewReader(content)
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(content)
		if _, err := readSized(r, int64(len(content))); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Fatalf("reading %d bytes of known size: %v allocations, want 1", len(content), allocs)
	}
}
