//go:build linux && (amd64 || arm64)

package supervise

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recordExec allows every call and keeps the last exec event.
type recordExec struct {
	allowAll
	last ExecEvent
}

func (r *recordExec) Exec(e ExecEvent) Verdict { r.last = e; return Allow }

// TestExecEventCtime checks that an exec event carries the status change
// time of the file the path resolves to (through a symlink: the target's),
// as stat of that file shows it, and none for a path the kernel's lookup
// does not decide.
func TestExecEventCtime(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("prog", link); err != nil {
		t.Fatal(err)
	}
	// The link is made later than the file: a ctime of the link would differ.
	var st unix.Stat_t
	if err := unix.Stat(prog, &st); err != nil {
		t.Fatal(err)
	}
	want := time.Unix(st.Ctim.Unix())
	h := &recordExec{}
	tr := &tracer{h: h, notify: true, procs: map[int]*proc{}}
	self := unix.Gettid()
	for _, p := range []string{prog, link} {
		path := append([]byte(p), 0)
		argv := []uintptr{uintptr(unsafe.Pointer(&path[0])), 0}
		tr.decide(self, unix.SYS_EXECVE, [6]uint64{uint64(uintptr(unsafe.Pointer(&path[0]))), uint64(uintptr(unsafe.Pointer(&argv[0])))})
		if h.last.Resolved != prog {
			t.Fatalf("exec of %s resolved to %q, want %q", p, h.last.Resolved, prog)
		}
		if !h.last.Ctime.Equal(want) {
			t.Errorf("exec of %s: Ctime %v, want the file's %v", p, h.last.Ctime, want)
		}
	}
	// /proc/self/exe is a magic link, resolved by the walk: no ctime read.
	path := append([]byte("/proc/self/exe"), 0)
	tr.decide(self, unix.SYS_EXECVE, [6]uint64{uint64(uintptr(unsafe.Pointer(&path[0]))), 0})
	if !h.last.Ctime.IsZero() {
		t.Errorf("exec of /proc/self/exe: Ctime %v, want none (the walk reads no status)", h.last.Ctime)
	}
}
