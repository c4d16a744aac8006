package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/scanners/layercache"
)

// TestArchiveDigestMemo: with a layer cache, the digest of a docker
// archive seen before is remembered (no layer is hashed again), and a
// rewritten archive is hashed anew.
func TestArchiveDigestMemo(t *testing.T) {
	img := imageOf(t, lowerLayer, upperLayer)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img.tar")
	ref, _ := name.ParseReference("example.test/memo:1")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	cache, err := layercache.Open(t.TempDir(), layercache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	open := func() *Image {
		im, err := Open(context.Background(), p, Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	first := open()
	if first.digestDone == nil {
		t.Fatal("first open took the digest from nowhere")
	}
	if d, err := first.Digest(); err != nil || d != want.String() {
		t.Fatalf("digest %s %v, want %s", d, err, want)
	}
	second := open()
	if second.digestDone != nil {
		t.Error("second open of the same file computed the digest again")
	}
	if d, err := second.Digest(); err != nil || d != want.String() {
		t.Errorf("remembered digest %s %v, want %s", d, err, want)
	}
	// Rewriting the file (same content) gives it a new identity.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	third := open()
	if third.digestDone == nil {
		t.Error("a rewritten archive took the remembered digest")
	}
	if d, err := third.Digest(); err != nil || d != want.String() {
		t.Errorf("digest %s %v, want %s", d, err, want)
	}
}
