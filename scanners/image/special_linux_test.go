package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// TestRootFSSkipsKernelMounts mounts proc and sysfs inside a root
// filesystem tree (at places no SkipDirs names) and checks that the walk
// enters neither: proc is endless and changes under the walk.
func TestRootFSSkipsKernelMounts(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	for _, p := range []string{"etc/os-release", "srv/app/package.json"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct{ dir, fstype string }{{"proc", "proc"}, {"srv/kernel", "sysfs"}} {
		dir := filepath.Join(root, m.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(m.fstype, dir, m.fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", m.fstype, dir, err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("%s mounted on %s lists %d entries (%v)", m.fstype, dir, len(entries), err)
		}
	}
	im, err := Open(context.Background(), root, Options{Kind: KindRootFS})
	if err != nil {
		t.Fatal(err)
	}
	var walked []string
	if err := im.Walk(context.Background(), func(f File) error {
		walked = append(walked, f.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(walked)
	if want := []string{"etc/os-release", "srv/app/package.json"}; !slices.Equal(walked, want) {
		t.Errorf("walk saw %d files (first %v), want %v", len(walked), walked[:min(len(walked), 5)], want)
	}
}
