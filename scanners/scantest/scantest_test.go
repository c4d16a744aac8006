package scantest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// TestLockFileExcludesOthers: while one holder has the lock, another open
// file description cannot take it; after unlock it can.
func TestLockFileExcludesOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := LockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != syscall.EWOULDBLOCK {
		t.Fatalf("second lock while held: %v, want EWOULDBLOCK", err)
	}
	unlock()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("second lock after unlock: %v", err)
	}
}

// TestRemoveTreeUnmountsFirst: a tree with file systems mounted inside it
// (as a failed debootstrap leaves proc mounted in its target) is unmounted,
// deepest first, and removed; os.RemoveAll alone would fail or descend into
// the mounts.
func TestRemoveTreeUnmountsFirst(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "tree with space")
	inner := filepath.Join(dir, "proc")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", inner, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	deeper := filepath.Join(inner, "fs")
	if err := os.Mkdir(deeper, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("proc", deeper, "proc", 0, ""); err != nil {
		t.Fatalf("mount proc: %v", err)
	}
	if err := removeTree(dir); err != nil {
		t.Fatalf("removeTree: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("tree still there: %v", err)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if want := filepath.Join(dir); len(b) > 0 && containsMount(string(b), want) {
		t.Fatalf("a mount under %s is still listed", want)
	}
}

func containsMount(mountinfo, dir string) bool {
	for _, mp := range mountPoints(mountinfo) {
		if mp == dir || len(mp) > len(dir) && mp[:len(dir)+1] == dir+"/" {
			return true
		}
	}
	return false
}
