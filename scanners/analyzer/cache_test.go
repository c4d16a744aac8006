package analyzer

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// blobCounter counts the registry's blob downloads per digest.
type blobCounter struct {
	mu    sync.Mutex
	blobs map[string]int
	next  http.Handler
}

func (b *blobCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
		b.mu.Lock()
		b.blobs[r.URL.Path[i+len("/blobs/"):]]++
		b.mu.Unlock()
	}
	b.next.ServeHTTP(w, r)
}

func (b *blobCounter) take() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.blobs
	b.blobs = map[string]int{}
	return out
}

// cacheTestImage pushes a three-layer image to a loopback registry: a
// Debian base, an app layer with npm packages and a Go binary, and a layer
// that deletes one npm package. It returns the reference and the layers'
// digests.
func cacheTestImage(t *testing.T) (string, *blobCounter, []v1.Hash) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []map[string][]byte{{
		"etc/os-release":                   []byte("ID=debian\nVERSION_ID=12\n"),
		"etc/debian_version":               []byte("12.5\n"),
		"var/lib/dpkg/status":              []byte("Package: libssl3\nStatus: install ok installed\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n\nPackage: node-ms\nStatus: install ok installed\nVersion: 2.1.3+~cs0.7.31-3\n"),
		"var/lib/dpkg/info/node-ms.list":   []byte("/usr/share/nodejs/ms/package.json\n"),
		"usr/share/nodejs/ms/package.json": []byte(`{"name":"ms","version":"2.1.3"}`),
	}, {
		"srv/app/node_modules/lodash/package.json":   []byte(`{"name":"lodash","version":"4.17.15"}`),
		"srv/app/node_modules/minimist/package.json": []byte(`{"name":"minimist","version":"1.2.5"}`),
		"usr/local/bin/app":                          goBin,
	}, {
		"srv/app/node_modules/.wh.minimist": nil,
	}}
	var layers []v1.Layer
	var digests []v1.Hash
	for _, files := range dirs {
		dir := t.TempDir()
		scantest.WriteFiles(t, dir, files)
		l, err := scantest.PackDir(dir, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		layers, digests = append(layers, l), append(digests, d)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	counter := &blobCounter{blobs: map[string]int{}, next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(counter)
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/cache/app:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	counter.take()
	return ref, counter, digests
}

func runCached(t *testing.T, ref string, cache *layercache.Cache, logger *slog.Logger) *Inventory {
	t.Helper()
	im, err := image.Open(context.Background(), ref, image.Options{Cache: cache, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inv, err := Run(context.Background(), im, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestLayerCacheSecondScanReadsNoLayer: the second scan of an image with
// every layer cached downloads no layer blob and finds the same packages
// as a scan without the cache.
func TestLayerCacheSecondScanReadsNoLayer(t *testing.T) {
	ref, counter, digests := cacheTestImage(t)
	cache, err := layercache.Open(t.TempDir(), layercache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	uncached := runCached(t, ref, nil, nil)
	if n := len(uncached.Packages); n != 4 {
		t.Fatalf("the test image gives only %d packages: %+v", n, uncached.Packages)
	}
	for _, p := range uncached.Packages {
		if p.Name == "minimist" || p.Name == "ms" {
			t.Fatalf("%s should be hidden (whiteout / owned by dpkg): %+v", p.Name, uncached.Packages)
		}
	}
	counter.take()

	first := runCached(t, ref, cache, nil)
	got := counter.take()
	for _, d := range digests {
		if got[d.String()] != 1 {
			t.Errorf("cold scan downloaded layer %s %d times, want once", d, got[d.String()])
		}
	}
	if !reflect.DeepEqual(first, uncached) {
		t.Errorf("cold cached scan differs from an uncached one:\n got %+v\nwant %+v", first, uncached)
	}

	second := runCached(t, ref, cache, nil)
	got = counter.take()
	for _, d := range digests {
		if got[d.String()] != 0 {
			t.Errorf("warm scan downloaded layer %s %d times, want never", d, got[d.String()])
		}
	}
	if !reflect.DeepEqual(second, uncached) {
		t.Errorf("warm scan differs from an uncached one:\n got %+v\nwant %+v", second, uncached)
	}

	// Another analyzer set (with lock files) is another key: the layers
	// are read again.
	im, err := image.Open(context.Background(), ref, image.Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if _, err := Run(context.Background(), im, Options{Analyzers: append(All(), Lockfiles()...)}); err != nil {
		t.Fatal(err)
	}
	got = counter.take()
	if got[digests[0].String()] != 1 {
		t.Errorf("another analyzer set reused the cache: downloads %v", got)
	}
}

// TestLayerCacheCorruptEntry: an entry damaged on disk is noticed, warned
// about, and the layer analysed again with the same result.
func TestLayerCacheCorruptEntry(t *testing.T) {
	ref, counter, digests := cacheTestImage(t)
	dir := t.TempDir()
	cache, err := layercache.Open(dir, layercache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := runCached(t, ref, cache, nil)
	counter.take()
	var entries []string
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".entry") {
			entries = append(entries, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(digests) {
		t.Fatalf("%d cache entries, want one per layer (%d)", len(entries), len(digests))
	}
	for i, p := range entries {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			b[len(b)-1] ^= 0xff // a flipped bit in the data
		} else {
			b = b[:len(b)/2] // a truncated file
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	got := runCached(t, ref, cache, logger)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after corruption:\n got %+v\nwant %+v", got, want)
	}
	downloads := counter.take()
	for _, d := range digests {
		if downloads[d.String()] != 1 {
			t.Errorf("layer %s downloaded %d times after its entry was damaged, want once", d, downloads[d.String()])
		}
	}
	if n := strings.Count(logBuf.String(), "layer cache entry unusable"); n != len(digests) {
		t.Errorf("%d warnings about damaged entries, want %d:\n%s", n, len(digests), logBuf.String())
	}
	// Repaired: the next scan reads nothing.
	runCached(t, ref, cache, nil)
	for d, n := range counter.take() {
		for _, l := range digests {
			if d == l.String() && n != 0 {
				t.Errorf("layer %s downloaded again after the repair", d)
			}
		}
	}
}

// TestLayerCachePoisoning: an image whose config gives its layer another
// image's diff ID must not fill the shared cache under that ID; the other
// image's scan still reads its own layer and finds its packages.
func TestLayerCachePoisoning(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	layerOf := func(files map[string][]byte) v1.Layer {
		dir := t.TempDir()
		scantest.WriteFiles(t, dir, files)
		l, err := scantest.PackDir(dir, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	push := func(ref string, img v1.Image) {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	victimLayer := layerOf(map[string][]byte{
		"srv/app/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.15"}`),
	})
	victimDiff, err := victimLayer.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	victim, err := mutate.AppendLayers(empty.Image, victimLayer)
	if err != nil {
		t.Fatal(err)
	}
	push(host+"/victim/app:1", victim)

	hostile, err := mutate.AppendLayers(empty.Image, layerOf(map[string][]byte{"srv/readme.txt": []byte("nothing here\n")}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := hostile.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs = []v1.Hash{victimDiff}
	if hostile, err = mutate.ConfigFile(hostile, cf); err != nil {
		t.Fatal(err)
	}
	push(host+"/hostile/app:1", hostile)

	cache, err := layercache.Open(t.TempDir(), layercache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if inv := runCached(t, host+"/hostile/app:1", cache, logger); len(inv.Packages) != 0 {
		t.Fatalf("the hostile image has packages: %+v", inv.Packages)
	}
	if !strings.Contains(logs.String(), "does not match the diff ID") {
		t.Errorf("no warning about the lying diff ID; log:\n%s", logs.String())
	}
	inv := runCached(t, host+"/victim/app:1", cache, nil)
	if len(inv.Packages) != 1 || inv.Packages[0].Name != "lodash" {
		t.Fatalf("the victim's scan after the hostile one found %+v, want lodash: the cache was poisoned", inv.Packages)
	}
	// The victim's own, honest layer is cached: a second scan reads it from there.
	logs.Reset()
	if inv := runCached(t, host+"/victim/app:1", cache, logger); len(inv.Packages) != 1 {
		t.Fatalf("warm victim scan found %+v", inv.Packages)
	}
	if strings.Contains(logs.String(), "does not match") {
		t.Errorf("an honest layer was refused by the cache:\n%s", logs.String())
	}
}
