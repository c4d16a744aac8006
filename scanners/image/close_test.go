package image

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// dockerArchive writes a docker archive of two layers and returns its
// path and manifest digest.
func dockerArchive(t *testing.T) (string, string) {
	t.Helper()
	img := imageOf(t, lowerLayer, upperLayer)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img.tar")
	ref, _ := name.ParseReference("example.test/close:1")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	return p, d.String()
}

// TestCloseEndsDigest: the goroutine that hashes a docker archive for its
// digest never outlives Close, whether the image is closed unused (opened
// then rejected), after a walk whose digest nobody asks for, or after
// Digest. synctest fails the test if a goroutine started in the bubble is
// left blocked when it ends (what a digest goroutine waiting for a walk
// that never comes is).
func TestCloseEndsDigest(t *testing.T) {
	p, want := dockerArchive(t)
	logger := slog.New(slog.DiscardHandler)
	walk := func(t *testing.T, im *Image) {
		if _, err := im.WalkLayers(context.Background(), 2, func(File) (any, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		use  func(t *testing.T, im *Image)
		// after is the digest after Close: the digest, empty for
		// ErrClosed, "either" for one or the other.
		after string
	}{
		{"unused", func(*testing.T, *Image) {}, ""},
		{"walked", walk, "either"},
		{"digest", func(t *testing.T, im *Image) {
			if d, err := im.Digest(); err != nil || d != want {
				t.Fatalf("digest %s %v, want %s", d, err, want)
			}
		}, want},
		{"walked and digest", func(t *testing.T, im *Image) {
			walk(t, im)
			if d, err := im.Digest(); err != nil || d != want {
				t.Fatalf("digest %s %v, want %s", d, err, want)
			}
		}, want},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				im, err := Open(context.Background(), p, Options{Logger: logger})
				if err != nil {
					t.Fatal(err)
				}
				tc.use(t, im)
				if err := im.Close(); err != nil {
					t.Fatal(err)
				}
			})
			im, err := Open(context.Background(), p, Options{Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			tc.use(t, im)
			im.Close()
			im.Close() // twice is fine
			d, err := im.Digest()
			switch tc.after {
			case "":
				if !errors.Is(err, ErrClosed) {
					t.Errorf("digest after Close: %q %v, want ErrClosed", d, err)
				}
			case "either":
				if d != want && !errors.Is(err, ErrClosed) {
					t.Errorf("digest after Close: %q %v", d, err)
				}
			default:
				if d != tc.after || err != nil {
					t.Errorf("digest after Close: %q %v, want %s", d, err, tc.after)
				}
			}
		})
	}
}

// TestClosingOpener: once the image is closed, the archive reads ggcr's
// digest goes through fail, so that a hashing in progress stops.
func TestClosingOpener(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	open := closingOpener(yieldingOpener(fileOpener(p)), closed)
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(io.Seeker); !ok {
		t.Error("the reader of a file does not seek")
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	close(closed)
	if _, err := rc.Read(buf); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v, want ErrClosed", err)
	}
	if _, err := open(); !errors.Is(err, ErrClosed) {
		t.Errorf("open after close: %v, want ErrClosed", err)
	}
}

// TestCloseNonArchive: Close is a no-op on images with no background
// work, and on an Image made without Open.
func TestCloseNonArchive(t *testing.T) {
	im, err := Open(context.Background(), t.TempDir(), Options{Kind: KindRootFS})
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if err := (&Image{Name: "bare"}).Close(); err != nil {
		t.Fatal(err)
	}
}
