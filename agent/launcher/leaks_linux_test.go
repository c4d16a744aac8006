//go:build linux && (amd64 || arm64)

package launcher

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/agent/detect"
	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// TestLastDenyBounded: the handler remembers each process's last refused
// exec (so a shell's PATH retries audit once), and the supervisor never
// says when a process ends. 2,000 processes, each refused mkdir once and
// then gone: the table stays within maxLastDeny (it kept an entry per
// process, with the whole command line, for the life of the launcher), and
// every command is still audited exactly once, PATH retries included.
func TestLastDenyBounded(t *testing.T) {
	const procs = 2000
	for _, mode := range []supervise.Mode{supervise.ModePtrace, supervise.ModeUserNotify} {
		t.Run(mode.String(), func(t *testing.T) {
			h := &handler{queue: make(chan api.Audit, 2*procs), log: slogDiscard(), self: os.Getpid()}
			h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{
				Name:      "r",
				Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}},
			}}})
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			// Each mkdir is a new process (the shell forks for it); on a
			// usr-merged host the shell tries /bin/mkdir, then /usr/bin/mkdir.
			script := `i=0; while [ $i -lt ` + strconv.Itoa(procs) + ` ]; do mkdir /nonexistent/x 2>/dev/null; i=$((i+1)); done; echo done`
			st, err := supervise.Run(supervise.Config{
				Path: "/bin/sh", Argv: []string{"sh", "-c", script},
				Env:   []string{"PATH=/bin:/usr/bin"},
				Files: [3]*os.File{nil, out, out}, Handler: h, Mode: mode,
			})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out.Name())
			if st.Code != 0 || strings.TrimSpace(string(b)) != "done" {
				t.Fatalf("app status %+v, output %q", st, b)
			}
			h.mu.Lock()
			n := len(h.lastDeny)
			h.mu.Unlock()
			if n > maxLastDeny {
				t.Errorf("the handler remembers the refused exec of %d processes after %d ended; want at most %d", n, procs, maxLastDeny)
			}
			audits := 0
			for len(h.queue) > 0 {
				a := <-h.queue
				if a.Kind != api.AuditProcess || !strings.Contains(a.Message, "mkdir") {
					t.Fatalf("unexpected audit %q", a.Message)
				}
				audits++
			}
			if audits != procs {
				t.Errorf("%d audits for %d refused commands, want one each", audits, procs)
			}
		})
	}
}

// TestRepeatDenied: a refused exec repeats the last one of its process
// only when the process, the file and the argv are the same; a process
// that took the pid of one that ended is not taken for it.
func TestRepeatDenied(t *testing.T) {
	pid := os.Getpid()
	h := &handler{}
	tests := []struct {
		name   string
		pid    int
		key    string
		stale  bool // the pid's entry is made to name an earlier process
		repeat bool
	}{
		{"first", pid, "a", false, false},
		{"retry", pid, "a", false, true},
		{"another command", pid, "b", false, false},
		{"retry of it", pid, "b", false, true},
		{"pid taken by a new process", pid, "b", true, false},
		{"another pid", pid + 1, "b", false, false},
	}
	for _, tt := range tests {
		if tt.stale {
			e := h.lastDeny[tt.pid]
			e.start--
			h.lastDeny[tt.pid] = e
		}
		if got := h.repeatDeniedLocked(tt.pid, tt.key); got != tt.repeat {
			t.Errorf("%s: repeat %v, want %v", tt.name, got, tt.repeat)
		}
	}
	if procStart(pid) == 0 {
		t.Error("procStart of this process is 0")
	}
}

// TestFileWatchOpenBounded: the account-file watch remembers the files it
// reported until they are closed after a write, so that a write session
// audits once. A name created in /etc/sudoers.d that is never closed after
// a write (here symlinks) is never closed: 600 of them leave at most
// maxOpen entries (it kept one each), and each creation is still audited.
func TestFileWatchOpenBounded(t *testing.T) {
	const created = 600
	root := fileRoot(t)
	h := &handler{queue: make(chan api.Audit, 2*created), log: slogDiscard(), self: os.Getpid(), det: &detect.Engine{}}
	h.setPolicy(&policy.Policy{Runtime: []policy.RuntimeRule{{Name: "r", Detectors: map[string]policy.Effect{"account-file-write": policy.EffectAlert}}}})
	w, stop := h.startFileWatch(nil)
	if w == nil {
		t.Fatal("no file watch")
	}
	dir := filepath.Join(root, "etc", "sudoers.d")
	for i := range created {
		if err := os.Symlink("/nonexistent", filepath.Join(dir, "s"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	stop() // reads the events queued before it returns
	if n := len(w.open); n > maxOpen {
		t.Errorf("the watch remembers %d files as written and not closed after %d symlinks were created; want at most %d", n, created, maxOpen)
	}
	audits := 0
	for len(h.queue) > 0 {
		if a := <-h.queue; strings.Contains(a.Message, "/etc/sudoers.d/s") && strings.Contains(a.Message, " created by ") {
			audits++
		}
	}
	if audits != created {
		t.Errorf("%d creation audits, want %d", audits, created)
	}
}
