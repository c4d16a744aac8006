package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRootFSSkipDirs: a root filesystem walk does not enter SkipDirs, in
// Walk and in WalkLayers alike, and still sees files beside them.
func TestRootFSSkipDirs(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"etc/os-release", "proc/1/status", "var/lib/taskguard/defender", "var/lib/dpkg/status", "procfile"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	im, err := Open(context.Background(), root, Options{Kind: KindRootFS, SkipDirs: []string{"proc", "/var/lib/taskguard/"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/os-release", "procfile", "var/lib/dpkg/status"}
	var walked []string
	if err := im.Walk(context.Background(), func(f File) error {
		walked = append(walked, f.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(walked)
	if !slices.Equal(walked, want) {
		t.Errorf("Walk saw %v, want %v", walked, want)
	}
	kept, err := im.WalkLayers(context.Background(), 1, func(f File) (any, error) { return f.Path, nil })
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, k := range kept {
		paths = append(paths, k.Path)
	}
	slices.Sort(paths)
	if !slices.Equal(paths, want) {
		t.Errorf("WalkLayers kept %v, want %v", paths, want)
	}
}
