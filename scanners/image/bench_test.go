package image

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// benchImage writes a two-layer docker archive of 20,000 files (about
// 40 MB) with one file a dpkg-like analyzer wants.
func benchImage(b *testing.B) string {
	var lower, upper []entry
	for i := 0; i < 10000; i++ {
		lower = append(lower, entry{name: fmt.Sprintf("usr/lib/x/%d/f", i), body: strings.Repeat("x", 2048)})
		upper = append(upper, entry{name: fmt.Sprintf("srv/app/%d/f", i), body: strings.Repeat("y", 2048)})
	}
	lower = append(lower, entry{name: "var/lib/dpkg/status", body: "Package: a\nVersion: 1\n"})
	path := filepath.Join(b.TempDir(), "img.tar")
	ref, _ := name.ParseReference("example.test/bench:1")
	if err := tarball.WriteToFile(path, ref, imageOf(b, lower, upper)); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkWalkLayers is BenchmarkWalkTarball through WalkLayers, one and
// two layers at a time.
func BenchmarkWalkLayers(b *testing.B) {
	path := benchImage(b)
	ctx := context.Background()
	for _, parallel := range []int{1, 2} {
		b.Run(fmt.Sprint("parallel=", parallel), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				im, err := Open(ctx, path, Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				kept, err := im.WalkLayers(ctx, parallel, func(f File) (any, error) {
					if f.Path != "var/lib/dpkg/status" {
						return nil, nil
					}
					return f.ReadAll()
				})
				if err != nil || len(kept) != 1 {
					b.Fatalf("walk: %v (%d kept)", err, len(kept))
				}
			}
		})
	}
}

// BenchmarkWalkTarball walks a two-layer docker archive of 20,000 files
// (about 40 MB) with the streaming Walk, reading only the file a dpkg-like
// analyzer would want.
func BenchmarkWalkTarball(b *testing.B) {
	path := benchImage(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		im, err := Open(ctx, path, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = im.Walk(ctx, func(f File) error {
			if f.Path != "var/lib/dpkg/status" {
				return nil
			}
			n++
			_, err := f.ReadAll()
			return err
		})
		if err != nil || n != 1 {
			b.Fatalf("walk: %v (%d reads)", err, n)
		}
	}
}
