//go:build linux && amd64

package supervise

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// recorder denies the programs whose base name is in deny and records every event.
type recorder struct {
	mu    sync.Mutex
	deny  []string
	execs []ExecEvent
}

func (r *recorder) Exec(e ExecEvent) Verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Parent, e.Argv = e.ParentExe(), e.Args() // read while the caller waits
	r.execs = append(r.execs, e)
	if slices.Contains(r.deny, filepath.Base(e.Path)) {
		return Deny
	}
	return Allow
}
func (r *recorder) Connect(ConnectEvent) Verdict { return Allow }
func (r *recorder) DNS(DNSEvent) Verdict         { return Allow }
func (r *recorder) Listen(ListenEvent) Verdict   { return Allow }
func (r *recorder) Foreign(int, int) Verdict     { return Allow }

var modes = []Mode{ModePtrace, ModeUserNotify}

func runShMode(t *testing.T, mode Mode, h Handler, script string) (Status, string) {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	st, err := Run(Config{
		Path: "/bin/sh", Argv: []string{"sh", "-c", script},
		Env:     []string{"PATH=/bin:/usr/bin", "TG_VAR=kept"},
		Files:   [3]*os.File{nil, out, out},
		Handler: h,
		Mode:    mode,
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, _ := os.ReadFile(out.Name())
	return st, string(b)
}

func TestRunStatusAndEnv(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []struct {
		name string
		mode Mode
		h    Handler
	}{{"plain", ModePtrace, nil}, {"ptrace", ModePtrace, &recorder{}}, {"notify", ModeUserNotify, &recorder{}}} {
		h := c.h
		t.Run(c.name, func(t *testing.T) {
			st, out := runShMode(t, c.mode, h, `echo "$TG_VAR"; exit 7`)
			if st.Code != 7 || st.Signal != 0 || strings.TrimSpace(out) != "kept" {
				t.Errorf("status %+v output %q, want code 7 and %q", st, out, "kept")
			}
			st, _ = runShMode(t, c.mode, h, `kill -TERM $$`)
			if st.Signal != syscall.SIGTERM || st.ExitCode() != 128+15 {
				t.Errorf("status %+v, want death by SIGTERM", st)
			}
		})
	}
}

func TestRunDeniesExecInTree(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range modes {
		t.Run(map[Mode]string{ModePtrace: "ptrace", ModeUserNotify: "notify"}[mode], func(t *testing.T) { testDeniesExecInTree(t, mode) })
	}
}

func testDeniesExecInTree(t *testing.T, mode Mode) {
	dir := t.TempDir()
	r := &recorder{deny: []string{"mkdir"}}
	// mkdir from the shell, from a child shell, from a grandchild in a
	// subshell pipeline; touch is allowed and proves execs go on.
	script := `cd '` + dir + `' && mkdir a; echo "first=$?"; sh -c 'sh -c "mkdir b; echo second=\$?"'; (touch c | cat); ls`
	st, out := runShMode(t, mode, r, script)
	if st.Code != 0 {
		t.Fatalf("status %+v, output %s", st, out)
	}
	for _, want := range []string{"first=1", "second=1", "c"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	for _, d := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err == nil {
			t.Errorf("directory %s was created despite the denial", d)
		}
	}
	// The shell retries a refused exec with each PATH entry that holds the
	// program, so one mkdir command can ask more than once (same pid).
	var mkdirs []ExecEvent
	pids := map[int]bool{}
	for _, e := range r.execs {
		if filepath.Base(e.Path) == "mkdir" {
			mkdirs = append(mkdirs, e)
			pids[e.PID] = true
		}
	}
	if len(pids) != 2 {
		t.Fatalf("saw mkdir execs from %d processes, want 2: %+v", len(pids), r.execs)
	}
	for _, e := range mkdirs {
		if filepath.Base(e.Resolved) != "mkdir" || e.Parent != "/bin/dash" || len(e.Argv) != 2 || e.Argv[1] == "" {
			t.Errorf("exec event %+v, want mkdir from /bin/dash", e)
		}
	}
}
