package image

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// mapCache is a LayerCache in memory.
type mapCache struct {
	mu sync.Mutex
	m  map[string]*LayerIndex
}

func (c *mapCache) Load(id string) (*LayerIndex, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id], nil
}

func (c *mapCache) Store(id string, idx *LayerIndex) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*LayerIndex{}
	}
	c.m[id] = idx
	return nil
}

func (c *mapCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// archiveOfBlobs writes a docker archive whose layers are the given blobs
// (stored as they are, compressed or not), with the given diff IDs in its
// config, and returns its path.
func archiveOfBlobs(t testing.TB, blobs [][]byte, diffIDs []string) string {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	entries := []entry{{name: "config.json", body: string(cfg)}}
	for i, b := range blobs {
		n := fmt.Sprintf("l%d/layer.tar.gz", i)
		names = append(names, n)
		entries = append(entries, entry{name: n, body: string(b)})
	}
	m, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"example.test/trailer:1"}, "Layers": names}})
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, entry{name: "manifest.json", body: string(m)})
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, tarBytes(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func diffIDOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// stdlibGunzip inflates b with Go's compress/gzip, as a peer: the error
// it gives is what a walk of the layer must fail with.
func stdlibGunzip(b []byte) ([]byte, error) {
	zr, err := stdgzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// walkPath is one way a layer is read.
type walkPath struct {
	name string
	walk func(im *Image) (map[string]string, *mapCache, error)
}

var walkPaths = []walkPath{
	{"Walk", func(im *Image) (map[string]string, *mapCache, error) {
		got := map[string]string{}
		err := im.Walk(context.Background(), func(f File) error {
			b, err := f.ReadAll()
			got[f.Path] = string(b)
			return err
		})
		return got, nil, err
	}},
	{"WalkLayers", func(im *Image) (map[string]string, *mapCache, error) {
		got, err := walkLayersMap(im, nil)
		return got, nil, err
	}},
	{"WalkLayersCached", func(im *Image) (map[string]string, *mapCache, error) {
		c := &mapCache{}
		got, err := walkLayersMap(im, c)
		return got, c, err
	}},
}

func walkLayersMap(im *Image, c *mapCache) (map[string]string, error) {
	var cache LayerCache
	if c != nil {
		cache = c
	}
	kept, err := im.WalkLayersCached(context.Background(), 2, func(f File) (any, error) {
		b, err := f.ReadAll()
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}, cache)
	got := map[string]string{}
	for _, k := range kept {
		got[k.Path] = k.Value.(string)
	}
	return got, err
}

// inflaters turns the parallel inflater on (with small chunks) or off.
var inflaters = []struct {
	name string
	set  func(t *testing.T)
}{
	{"sequential", func(t *testing.T) {
		old := pgzDisabled
		pgzDisabled = true
		t.Cleanup(func() { pgzDisabled = old })
	}},
	{"parallel", func(t *testing.T) {
		smallChunks(t, 64<<10)
		old := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	}},
}

// TestLayerGzipTrailer: a layer whose gzip stream is damaged after the
// tar's end marker (the last member's CRC-32 or size, a truncated
// trailer, bytes after the last member) fails every walk, with the
// inflater Go's compress/gzip gives for it and the layer named, whether
// the layer is inflated in parallel or not, cached or not, one gzip
// member or several. Nothing of it is stored in the layer cache.
func TestLayerGzipTrailer(t *testing.T) {
	files := []entry{
		{name: "etc/os-release", body: "ID=test\n"},
		{name: "usr/lib/big", body: string(mixed(700<<10, 11))},
		{name: "usr/share/doc/copyright", body: string(text(40<<10, 12))},
	}
	plain := tarBytes(t, files)
	good := gzipLevel(t, plain, 6)
	// Two members, the second holding the tar's end.
	cut := len(plain) - 3<<10
	multi := append(gzipLevel(t, plain[:cut], 6), gzipLevel(t, plain[cut:], 6)...)
	if int64(len(good)) < 4*64<<10 {
		t.Fatalf("layer of %d bytes is too small to be inflated in parallel", len(good))
	}
	flip := func(b []byte, fromEnd int) []byte {
		b = bytes.Clone(b)
		b[len(b)-fromEnd] ^= 0x5a
		return b
	}
	cases := []struct {
		name string
		blob []byte
		want string // in compress/gzip's error and the walk's
	}{
		{"crc", flip(good, 8), "invalid checksum"},
		{"crc last byte", flip(good, 5), "invalid checksum"},
		{"size", flip(good, 4), "invalid checksum"},
		{"size high byte", flip(good, 1), "invalid checksum"},
		{"multi-member last crc", flip(multi, 7), "invalid checksum"},
		{"multi-member last size", flip(multi, 2), "invalid checksum"},
		{"truncated trailer", good[:len(good)-3], "unexpected EOF"},
		{"no trailer", good[:len(good)-8], "unexpected EOF"},
		{"trailing garbage", append(bytes.Clone(good), []byte("garbage after the last member")...), "invalid header"},
		{"trailing bytes", append(bytes.Clone(good), 0, 0, 0), "unexpected EOF"},
		{"multi-member trailing garbage", append(bytes.Clone(multi), []byte("garbage after the last member")...), "invalid header"},
	}
	id := diffIDOf(plain)
	for _, inf := range inflaters {
		t.Run(inf.name, func(t *testing.T) {
			inf.set(t)
			for _, tc := range cases {
				if _, err := stdlibGunzip(tc.blob); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: compress/gzip gives %v, want %q", tc.name, err, tc.want)
				}
				if inf.name == "parallel" {
					pr := newPgzReader(bytes.NewReader(tc.blob))
					if pr == nil {
						t.Fatalf("%s: not inflated in parallel", tc.name)
					}
					pr.Close()
				}
				p := archiveOfBlobs(t, [][]byte{tc.blob}, []string{id})
				for _, wp := range walkPaths {
					im, err := Open(context.Background(), p, Options{Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					_, c, err := wp.walk(im)
					switch {
					case err == nil:
						t.Errorf("%s %s: the walk of a layer with a bad gzip stream succeeded", tc.name, wp.name)
					case !strings.Contains(err.Error(), "layer "+id) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "corrupt"):
						t.Errorf("%s %s: error %q does not name the layer, say it is corrupt and give %q", tc.name, wp.name, err, tc.want)
					}
					if c != nil && c.len() != 0 {
						t.Errorf("%s %s: a corrupt layer was stored in the layer cache", tc.name, wp.name)
					}
					im.Close()
				}
			}
			// The same layers undamaged are read whole by every walk.
			for _, blob := range [][]byte{good, multi} {
				p := archiveOfBlobs(t, [][]byte{blob}, []string{id})
				for _, wp := range walkPaths {
					im, err := Open(context.Background(), p, Options{Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					got, c, err := wp.walk(im)
					if err != nil {
						t.Fatalf("%s: %v", wp.name, err)
					}
					if len(got) != len(files) || got["usr/lib/big"] != files[1].body {
						t.Errorf("%s: %d files, want %d", wp.name, len(got), len(files))
					}
					if c != nil && c.len() != 1 {
						t.Errorf("%s: %d layers stored in the cache, want 1", wp.name, c.len())
					}
					im.Close()
				}
			}
		})
	}
}

// TestLayerDiffIDMismatch: with a layer cache, a layer whose content does
// not hash to the diff ID the config gives it is read (its files are
// found) but not stored under that diff ID, with a warning; a damaged
// layer under a lying diff ID still fails.
func TestLayerDiffIDMismatch(t *testing.T) {
	plain := tarBytes(t, []entry{{name: "a", body: string(mixed(600<<10, 3))}, {name: "b", body: "b"}})
	blob := gzipLevel(t, plain, 6)
	lie := diffIDOf([]byte("another layer"))
	for _, inf := range inflaters {
		t.Run(inf.name, func(t *testing.T) {
			inf.set(t)
			for _, b := range [][]byte{blob, plain} {
				p := archiveOfBlobs(t, [][]byte{b}, []string{lie})
				var logs bytes.Buffer
				im, err := Open(context.Background(), p, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
				if err != nil {
					t.Fatal(err)
				}
				c := &mapCache{}
				got, err := walkLayersMap(im, c)
				im.Close()
				if err != nil || got["b"] != "b" || len(got["a"]) != 600<<10 {
					t.Fatalf("walk: %v, %d files", err, len(got))
				}
				if c.len() != 0 {
					t.Error("a layer was stored under a diff ID its content does not hash to")
				}
				if !strings.Contains(logs.String(), "does not match the diff ID") || !strings.Contains(logs.String(), lie) {
					t.Errorf("no warning naming the layer; log:\n%s", logs.String())
				}
			}
			// The true diff ID is stored.
			p := archiveOfBlobs(t, [][]byte{blob}, []string{diffIDOf(plain)})
			im, err := Open(context.Background(), p, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			c := &mapCache{}
			if _, err := walkLayersMap(im, c); err != nil {
				t.Fatal(err)
			}
			if idx, _ := c.Load(diffIDOf(plain)); idx == nil {
				t.Error("a verified layer was not stored")
			}
			// A damaged stream under a lying diff ID fails too.
			bad := bytes.Clone(blob)
			bad[len(bad)-6] ^= 1
			p = archiveOfBlobs(t, [][]byte{bad}, []string{lie})
			im2, err := Open(context.Background(), p, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer im2.Close()
			if _, err := walkLayersMap(im2, &mapCache{}); err == nil || !strings.Contains(err.Error(), "invalid checksum") {
				t.Errorf("damaged layer under a lying diff ID: %v", err)
			}
		})
	}
}
