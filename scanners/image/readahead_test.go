package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// text returns n bytes of compressible pseudo-random text.
func text(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	words := []string{"lib", "usr", "share", "doc", "copyright", "x86_64", "debian", "\n", " ", "0.1.2", "GPL"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.Intn(len(words))])
	}
	return b.Bytes()[:n]
}

func gzipped(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// oddReader returns at most 7 bytes per read.
type oddReader struct{ r io.Reader }

func (o oddReader) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7]
	}
	return o.r.Read(p)
}

func TestReadaheadContent(t *testing.T) {
	plain := text(5*readaheadSize+123, 1)
	r, err := decompress(bytes.NewReader(gzipped(t, plain)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*readahead); !ok {
		t.Fatalf("gzip stream read through %T, not the read-ahead", r)
	}
	got, err := io.ReadAll(oddReader{r})
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read %d bytes (%v), want %d identical", len(got), err, len(plain))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, errReadaheadClosed) {
		t.Errorf("read after close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadaheadError(t *testing.T) {
	boom := errors.New("boom")
	data := text(readaheadSize+10, 2)
	ra := newReadahead(&failingReader{data: append([]byte(nil), data...), err: boom}, nil)
	got, err := io.ReadAll(ra)
	if !errors.Is(err, boom) || !bytes.Equal(got, data) {
		t.Errorf("got %d bytes and %v; want %d then boom", len(got), err, len(data))
	}
	if err := ra.Close(); err != nil {
		t.Error(err)
	}
}

// TestReadaheadCloseMidStream stops the read-ahead part way and reads the
// rest of the compressed blob, as a layer walk does to reach its end (the
// race detector checks that the goroutine is gone).
func TestReadaheadCloseMidStream(t *testing.T) {
	blob := gzipped(t, text(20*readaheadSize, 3))
	src := bytes.NewReader(blob)
	r, err := decompress(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(src)
	if err != nil {
		t.Fatal(err)
	}
	if consumed := len(blob) - len(rest); consumed <= 0 || consumed > len(blob) {
		t.Errorf("consumed %d of %d bytes", consumed, len(blob))
	}
	select {
	case <-r.(*readahead).exited:
	default:
		t.Error("read-ahead goroutine still running after Close")
	}
}

// BenchmarkColdGzipLayer walks a one-layer gzip docker archive of a real
// root filesystem (the debootstrap'ed bookworm the scan tests cache, else
// 40 MB of generated text files) reading the files analyzers want, with
// and without the read-ahead. Report the ratio of the two.
func BenchmarkColdGzipLayer(b *testing.B) {
	cache, _ := os.UserCacheDir()
	root := filepath.Join(cache, "taskguard", "debootstrap", "bookworm-minbase")
	var entries []entry
	if _, err := os.Stat(root + ".done"); err == nil {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			body, err := os.ReadFile(p)
			if err != nil {
				return nil // unreadable: skip
			}
			rel, _ := filepath.Rel(root, p)
			entries = append(entries, entry{name: filepath.ToSlash(rel), body: string(body)})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	} else {
		for i := 0; i < 2000; i++ {
			entries = append(entries, entry{name: fmt.Sprintf("usr/share/x/%d", i), body: string(text(20<<10, int64(i)))})
		}
		entries = append(entries, entry{name: "var/lib/dpkg/status", body: "Package: a\nVersion: 1\n"})
	}
	img, err := mutate.AppendLayers(empty.Image, layerOf(b, entries))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "img.tar")
	ref, _ := name.ParseReference("example.test/bench:1")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		b.Fatal(err)
	}
	want := map[string]bool{"var/lib/dpkg/status": true, "etc/os-release": true, "usr/lib/os-release": true}
	ctx := context.Background()
	for _, ahead := range []bool{false, true} {
		b.Run(fmt.Sprint("readahead=", ahead), func(b *testing.B) {
			noReadahead = !ahead
			defer func() { noReadahead = false }()
			for i := 0; i < b.N; i++ {
				im, err := Open(ctx, path, Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				kept, err := im.WalkLayers(ctx, 1, func(f File) (any, error) {
					if !want[f.Path] {
						return nil, nil
					}
					return f.ReadAll()
				})
				if err != nil || len(kept) == 0 {
					b.Fatalf("walk: %v (%d kept)", err, len(kept))
				}
			}
		})
	}
}

// TestDefaultInflaterIsGo: with no faster inflater registered (this
// package alone does not import scanners/image/isal) gzip layers go
// through klauspost/compress.
func TestDefaultInflaterIsGo(t *testing.T) {
	if got := GzipInflater(); got != "go" {
		t.Fatalf("GzipInflater() = %q, want %q", got, "go")
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestReadaheadBuffersOnDemand: a small stream costs one buffer; a reader
// that does not read lets the inflater run readaheadBuffers buffers ahead
// and no further.
func TestReadaheadBuffersOnDemand(t *testing.T) {
	small := text(readaheadSize/3, 4)
	ra := newReadahead(bytes.NewReader(small), nil)
	got, err := io.ReadAll(ra)
	if err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small stream: %v, %d of %d bytes", err, len(got), len(small))
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if ra.made != 1 {
		t.Fatalf("small stream made %d buffers, want 1", ra.made)
	}

	src := &countingReader{r: bytes.NewReader(text(3*readaheadBuffers*readaheadSize, 5))}
	ra = newReadahead(src, nil)
	deadline := time.Now().Add(10 * time.Second)
	for len(ra.filled) < readaheadBuffers {
		if time.Now().After(deadline) {
			t.Fatalf("read-ahead filled %d buffers in 10 s, want %d", len(ra.filled), readaheadBuffers)
		}
		runtime.Gosched()
	}
	// Every buffer is made and full: run waits for a free one.
	if n := src.n.Load(); n != readaheadBuffers*readaheadSize {
		t.Fatalf("read %d bytes ahead, want %d", n, readaheadBuffers*readaheadSize)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if ra.made != readaheadBuffers {
		t.Fatalf("made %d buffers, want %d", ra.made, readaheadBuffers)
	}
}
