package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/taskguard/taskguard/scanners/scantest"
)

// TestRegistryMetadataBounds: a registry whose manifest is over 4 MiB
// (with a Content-Length or streamed), or whose manifest declares a config
// over 4 MiB or more than 1,000 layers, is refused with ErrMetadataTooLarge
// before any blob is asked for; the same registry serves a small image
// that opens.
func TestRegistryMetadataBounds(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	blobGets := map[string]int{}
	big := scantest.Manifest(t, 100, 1, 5<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			mu.Lock()
			blobGets[r.URL.Path]++
			mu.Unlock()
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/big-sized"):
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		case strings.HasSuffix(r.URL.Path, "/manifests/big-streamed"):
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			for rest := big; len(rest) > 0; rest = rest[min(len(rest), 64<<10):] {
				if _, err := w.Write(rest[:min(len(rest), 64<<10)]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		default:
			reg.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	scantest.PutManifest(t, srv.URL, "hostile/img", "big-config", scantest.Manifest(t, 64<<20, 1, 0))
	scantest.PutManifest(t, srv.URL, "hostile/img", "many-layers", scantest.Manifest(t, 100, MaxLayers+1, 0))
	ref, err := name.ParseReference(host + "/hostile/img:small")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, imageOf(t, lowerLayer)); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		tag, want string
	}{
		{"big-sized", "registry manifest of"},
		{"big-streamed", "registry manifest of"},
		{"big-config", "declares an image config of 67108864 bytes"},
		{"many-layers", "lists 1001 layers"},
	}
	for _, c := range cases {
		t.Run(c.tag, func(t *testing.T) {
			im, err := Open(context.Background(), host+"/hostile/img:"+c.tag, Options{Kind: KindRegistry})
			if err == nil {
				im.Close()
				t.Fatal("opened, want ErrMetadataTooLarge")
			}
			if !errors.Is(err, ErrMetadataTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want ErrMetadataTooLarge saying %q", err, c.want)
			}
		})
	}
	mu.Lock()
	if len(blobGets) != 0 {
		t.Errorf("blobs fetched from refused images: %v", blobGets)
	}
	mu.Unlock()

	im, err := Open(context.Background(), host+"/hostile/img:small", Options{Kind: KindRegistry})
	if err != nil {
		t.Fatalf("the small image of the same registry: %v", err)
	}
	defer im.Close()
	if got := collect(t, im); len(got) == 0 {
		t.Fatal("the small image has no files")
	}
}

// TestLayoutMetadataBounds: an OCI layout whose index.json or image
// manifest file is over 4 MiB, or whose manifest declares a config over
// 4 MiB, is refused before ggcr reads it; an untouched layout opens.
func TestLayoutMetadataBounds(t *testing.T) {
	newLayout := func(t *testing.T) (string, v1.Hash) {
		dir := t.TempDir()
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		img := imageOf(t, lowerLayer)
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return dir, d
	}
	// setManifest replaces the image's manifest with m (its digest is the
	// old one: the size check comes before any read).
	setManifest := func(t *testing.T, dir string, d v1.Hash, m []byte) {
		if err := os.WriteFile(layoutBlob(dir, d), m, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		change func(t *testing.T, dir string, d v1.Hash)
		want   string
	}{
		{"index", func(t *testing.T, dir string, _ v1.Hash) {
			b, err := os.ReadFile(filepath.Join(dir, "index.json"))
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, bytes.Repeat([]byte(" "), 5<<20)...) // still valid JSON
			if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "index "},
		{"manifest", func(t *testing.T, dir string, d v1.Hash) {
			setManifest(t, dir, d, scantest.Manifest(t, 100, 1, 5<<20))
		}, "manifest "},
		{"config", func(t *testing.T, dir string, d v1.Hash) {
			setManifest(t, dir, d, scantest.Manifest(t, 64<<20, 1, 0))
		}, "declares an image config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, d := newLayout(t)
			c.change(t, dir, d)
			im, err := Open(context.Background(), dir, Options{Kind: KindLayout})
			if err == nil {
				im.Close()
				t.Fatal("opened, want ErrMetadataTooLarge")
			}
			if !errors.Is(err, ErrMetadataTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want ErrMetadataTooLarge saying %q", err, c.want)
			}
		})
	}
	dir, _ := newLayout(t)
	im, err := Open(context.Background(), dir, Options{Kind: KindLayout})
	if err != nil {
		t.Fatalf("untouched layout: %v", err)
	}
	im.Close()
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	name, link string
	body       []byte
}

func writeTar(t *testing.T, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestArchiveMetadataBounds: a docker archive whose manifest.json is over
// 1 MiB (itself or through links), whose config entry is over 4 MiB, that
// lists more than 1,000 layers, or whose manifest.json is a long chain of
// links, is refused before ggcr reads it; a small archive opens.
func TestArchiveMetadataBounds(t *testing.T) {
	archiveManifest := func(config string, layers int, pad int) []byte {
		m := []map[string]any{{"Config": config, "RepoTags": []string{"x:1"}, "Layers": []string{}}}
		var ls []string
		for i := range layers {
			ls = append(ls, fmt.Sprintf("l%d.tar", i))
		}
		if ls != nil {
			m[0]["Layers"] = ls
		}
		if pad > 0 {
			m[0]["Pad"] = strings.Repeat("x", pad)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	var chain []tarEntry
	for i := range maxArchiveLinks + 2 {
		chain = append(chain, tarEntry{name: fmt.Sprintf("link%d", i), link: fmt.Sprintf("link%d", i+1)})
	}
	cases := []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"manifest", []tarEntry{{name: "manifest.json", body: archiveManifest("c.json", 0, 2<<20)}, {name: "c.json", body: config}}, "manifest.json is"},
		{"manifest-link", []tarEntry{
			{name: "manifest.json", link: "m/real.json"},
			{name: "m/real.json", body: archiveManifest("c.json", 0, 2<<20)},
			{name: "c.json", body: config},
		}, "manifest.json is"},
		{"config", []tarEntry{{name: "manifest.json", body: archiveManifest("c.json", 0, 0)}, {name: "c.json", body: append(config, bytes.Repeat([]byte(" "), 5<<20)...)}}, "image config c.json is"},
		{"layers", []tarEntry{{name: "manifest.json", body: archiveManifest("c.json", MaxLayers+1, 0)}, {name: "c.json", body: config}}, "lists 1001 layers"},
		{"link-chain", append([]tarEntry{{name: "manifest.json", link: "link0"}}, chain...), "links to follow"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTar(t, c.entries)
			im, err := Open(context.Background(), p, Options{Kind: KindTarball})
			if err == nil {
				im.Close()
				t.Fatal("opened, want an error")
			}
			if c.name != "link-chain" && !errors.Is(err, ErrMetadataTooLarge) {
				t.Fatalf("%v, want ErrMetadataTooLarge", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("%v, want an error naming %s and saying %q", err, p, c.want)
			}
		})
	}
	ref, err := name.ParseReference("small:1")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "small.tar")
	if err := tarball.WriteToFile(p, ref, imageOf(t, lowerLayer)); err != nil {
		t.Fatal(err)
	}
	im, err := Open(context.Background(), p, Options{Kind: KindTarball})
	if err != nil {
		t.Fatalf("small archive: %v", err)
	}
	defer im.Close()
	if got := collect(t, im); len(got) == 0 {
		t.Fatal("the small archive has no files")
	}
}
