//go:build linux && (amd64 || arm64)

package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// recorder denies the programs whose base name is in deny and records every event.
type recorder struct {
	mu    sync.Mutex
	deny  []string
	execs []ExecEvent
	// killOnDeny kills the caller (SIGKILL) before answering Deny: the
	// tracee dies in the middle of its stop.
	killOnDeny bool
	outcomes   []outcome
}

type outcome struct {
	pid int
	o   Outcome
	err error
}

func (r *recorder) Exec(e ExecEvent) Verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Parent, e.Argv = e.ParentExe(), e.Args() // read while the caller waits
	r.execs = append(r.execs, e)
	if slices.Contains(r.deny, filepath.Base(e.Path)) {
		if r.killOnDeny {
			_ = syscall.Kill(e.PID, syscall.SIGKILL)
		}
		return Deny
	}
	return Allow
}

func (r *recorder) Enforced(pid int, o Outcome, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, outcome{pid, o, err})
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

func modeName(m Mode) string {
	return map[Mode]string{ModePtrace: "ptrace", ModeUserNotify: "notify"}[m]
}

// TestRefusalFailureKills: when the refusal of a denied exec cannot be
// applied (the register write or the notification answer fails), the
// process is killed before the program runs and the handler hears Killed.
func TestRefusalFailureKills(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range modes {
		t.Run(modeName(mode), func(t *testing.T) {
			forced := errors.New("forced register write failure")
			savedRegs, savedSend := setRegs, sendNotif
			setRegs = func(int, *unix.PtraceRegs) error { return forced }
			sendNotif = func(fd int, resp *seccompNotifResp) unix.Errno {
				if resp.Error != 0 { // fail the refusals only
					return unix.EIO
				}
				return savedSend(fd, resp)
			}
			t.Cleanup(func() { setRegs, sendNotif = savedRegs, savedSend })
			dir := t.TempDir()
			r := &recorder{deny: []string{"mkdir"}}
			st, out := runShMode(t, mode, r, `cd '`+dir+`' && mkdir a; echo "first=$?"; touch c; ls`)
			if st.Code != 0 || !strings.Contains(out, "first=137") || !strings.Contains(out, "c") {
				t.Errorf("status %+v output %q: want the mkdir process killed (137) and the script going on", st, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
				t.Error("directory a was created: the denied program ran")
			}
			if len(r.outcomes) == 0 {
				t.Fatal("the handler heard no outcome for the denied exec")
			}
			for _, o := range r.outcomes {
				if o.o != Killed || o.err == nil {
					t.Errorf("outcome %v (err %v), want killed with the cause", o.o, o.err)
				}
			}
		})
	}
}

// TestTraceeDiesMidStop: the denied caller is killed while it waits for the
// verdict (a real failure of the refusal, not a forced one). The program
// never runs and the outcome is never "refused" under ptrace, where the
// register write fails on the dead tracee.
func TestTraceeDiesMidStop(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range modes {
		t.Run(modeName(mode), func(t *testing.T) {
			dir := t.TempDir()
			r := &recorder{deny: []string{"mkdir"}, killOnDeny: true}
			_, out := runShMode(t, mode, r, `cd '`+dir+`' && mkdir a; echo "first=$?"`)
			if !strings.Contains(out, "first=137") {
				t.Errorf("output %q: want the mkdir process dead by SIGKILL", out)
			}
			if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
				t.Error("directory a was created: the denied program ran")
			}
			if len(r.outcomes) == 0 {
				t.Fatal("the handler heard no outcome for the denied exec")
			}
			for _, o := range r.outcomes {
				switch {
				case o.o == Unenforced:
					t.Errorf("outcome unenforced (%v) for a process that died", o.err)
				case mode == ModePtrace && o.o != Gone:
					t.Errorf("ptrace outcome %v (err %v), want gone: the tracee was dead before the answer", o.o, o.err)
				}
			}
		})
	}
}

// TestExecNamesTheRealFile: on a usr-merged layout (bin -> usr/bin) the exec
// event keeps the name the program was called by and resolves the file the
// kernel runs; on a layout where bin is a real directory both agree.
func TestExecNamesTheRealFile(t *testing.T) {
	testenv.RequireRoot(t)
	prog, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	merged, plain := t.TempDir(), t.TempDir()
	for _, d := range []string{filepath.Join(merged, "usr", "bin"), filepath.Join(plain, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "prog"), prog, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(merged, "bin")); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(modeName(mode), func(t *testing.T) {
			r := &recorder{}
			st, out := runShMode(t, mode, r, `'`+merged+`/bin/prog' && '`+plain+`/bin/prog' && echo ran`)
			if st.Code != 0 || !strings.Contains(out, "ran") {
				t.Fatalf("status %+v output %q", st, out)
			}
			want := map[string]string{
				filepath.Join(merged, "bin", "prog"): filepath.Join(merged, "usr", "bin", "prog"),
				filepath.Join(plain, "bin", "prog"):  filepath.Join(plain, "bin", "prog"),
			}
			seen := 0
			for _, e := range r.execs {
				if real, ok := want[e.Path]; ok {
					seen++
					if e.Resolved != real {
						t.Errorf("exec of %s resolved to %q, want %q", e.Path, e.Resolved, real)
					}
				}
			}
			if seen != 2 {
				t.Errorf("saw %d of the 2 execs: %+v", seen, r.execs)
			}
		})
	}
}

// TestResolveUnder: symlinks resolve inside the given root, as the kernel
// resolves them for a process whose root it is; absolute targets start
// again at that root, never at ours.
func TestResolveUnder(t *testing.T) {
	// openat2 (Linux 5.6) decides paths by itself where it exists; without
	// it (ENOSYS: qemu-user, old kernels) everything goes to the walk,
	// whose answers are checked the same.
	kernelLookup := true
	if fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC}); err == unix.ENOSYS {
		kernelLookup = false
		t.Log("openat2 is not available: every path goes to the walk")
	} else if err == nil {
		unix.Close(fd)
	}

	root := t.TempDir()
	for _, d := range []string{"usr/bin", "opt/app/bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"usr/bin/dash", "usr/bin/wget-real", "opt/app/bin/tool", "etc/file"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"bin":              "usr/bin",
		"usr/bin/sh":       "dash",
		"usr/bin/wget":     "/usr/bin/wget-real", // absolute: inside root
		"usr/bin/tool":     "../../opt/app/bin/tool",
		"usr/bin/loop":     "loop",
		"usr/bin/escape":   "../../../../../../etc/file", // .. stops at the root
		"usr/bin/dangling": "/nonexistent",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path, want string
		wantErr    bool
	}{
		{"/bin/sh", "/usr/bin/dash", false},
		{"/bin/wget", "/usr/bin/wget-real", false},
		{"/bin/tool", "/opt/app/bin/tool", false},
		{"/usr/bin/../bin/./dash", "/usr/bin/dash", false},
		{"/bin/escape", "/etc/file", false},
		{"/bin/loop", "", true},
		{"/bin/dangling", "", true},
		{"/bin/missing", "", true},
		{"/etc/file/x", "", true},
	}
	for _, tt := range tests {
		got, err := resolveUnder(root, tt.path)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("resolveUnder(%s) = %q, %v; want %q, error %v", tt.path, got, err, tt.want, tt.wantErr)
		}
		// The kernel's lookup (openat2 RESOLVE_IN_ROOT) agrees, the root
		// being a directory below ours (its names lose the prefix); it
		// decides every path that exists by itself.
		got, err = resolveInRoot(root, tt.path)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("resolveInRoot(%s) = %q, %v; want %q, error %v", tt.path, got, err, tt.want, tt.wantErr)
		}
		if _, _, ok := resolveByKernel(root, tt.path); !ok && !tt.wantErr && kernelLookup {
			t.Errorf("resolveByKernel(%s) left %q to the walk", tt.path, tt.want)
		}
	}
	// Our own root needs no prefix removed. A magic link (/proc/self/exe)
	// is left to the walk, which follows it as an exec does.
	exe := mustExe(t)
	if got, err, ok := resolveByKernel("/", exe); kernelLookup && (!ok || err != nil || got != exe) {
		t.Errorf("resolveByKernel(/, %s) = %q, %v, %v; want it unchanged", exe, got, err, ok)
	}
	self := "/proc/" + strconv.Itoa(os.Getpid()) + "/root"
	if got, err, ok := resolveByKernel(self, "/proc/self/exe"); ok {
		t.Errorf("resolveByKernel(%s, /proc/self/exe) = %q, %v: a magic link must not be decided here", self, got, err)
	}
	// What the kernel runs for this process, read through the root link:
	// under qemu-user that is the emulator, whatever qemu answers for a
	// readlink of /proc/self/exe (natively both are the test binary).
	kexe, err := os.Readlink(self + "/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := resolveIn(os.Getpid(), "/proc/self/exe"); err != nil || got != kexe {
		t.Errorf("resolveIn(/proc/self/exe) = %q, %v; want %q", got, err, kexe)
	}
}

func mustExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestStopsPerExec counts what supervision costs the app: under ptrace an
// exec of a child costs its fork event, its first stop, its execve and the
// SIGCHLD its parent receives (every signal stops a tracee), but no exec
// event; under user notification the execve only. Calls that are not
// supervised (the shell's file work) never stop.
func TestStopsPerExec(t *testing.T) {
	testenv.RequireRoot(t)
	const n = 20
	for _, mode := range modes {
		t.Run(modeName(mode), func(t *testing.T) {
			r := &recorder{}
			st, out := runShMode(t, mode, r, `i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done; echo done`)
			if st.Code != 0 || !strings.Contains(out, "done") {
				t.Fatalf("status %+v output %q", st, out)
			}
			s := st.Stops
			t.Logf("%d execs: %+v", len(r.execs), s)
			execs := int64(len(r.execs)) // the shell itself and the n children
			if execs != n+1 {
				t.Fatalf("saw %d execs, want %d", execs, n+1)
			}
			if s.Calls != execs || s.Execs != 0 {
				t.Errorf("stops %+v: want one call stop per exec, no exec events", s)
			}
			// The launcher's stub is a Go program: a few runtime threads
			// start before it execs the shell, and on a loaded machine the Go
			// runtime preempts them with a few SIGURGs (each a signal stop).
			if mode == ModePtrace && (s.Forks < n || s.Forks > n+8 || s.Starts > s.Forks+1 || s.Signals < n || s.Signals > n+8) {
				t.Errorf("stops %+v: want one fork event, one first stop and one SIGCHLD per child", s)
			}
			if mode == ModeUserNotify && (s.Forks != 0 || s.Starts != 0) {
				t.Errorf("stops %+v: user notification has no ptrace stops", s)
			}
		})
	}
}

// gate holds the exec of one program (hold) until release is closed, after
// telling inflight; it records the pid of the first exec (the supervised
// child's own) and every exec path.
type gate struct {
	recorder
	hold     string
	inflight chan struct{}
	release  chan struct{}
	first    atomic.Int64
}

func (g *gate) Exec(e ExecEvent) Verdict {
	g.first.CompareAndSwap(0, int64(e.PID))
	if e.Path == g.hold {
		close(g.inflight)
		<-g.release
	}
	return g.recorder.Exec(e)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestNotifyStopsClean: the user-notification loop blocks without a
// timeout and still stops cleanly. Concurrent execs are each decided once
// (no notification lost); a notification still waiting when the supervised
// child ends (a background process's exec) is answered before Run returns,
// so that program runs; Run leaves no goroutine and no fd behind.
func TestNotifyStopsClean(t *testing.T) {
	testenv.RequireRoot(t)
	runShMode(t, ModeUserNotify, &recorder{}, `true`) // starts os/signal's goroutine once
	goroutines, fds := runtime.NumGoroutine(), testenv.OpenFDs(t)

	t.Run("concurrent", func(t *testing.T) {
		r := &recorder{}
		const n = 40
		st, out := runShMode(t, ModeUserNotify, r, `for i in `+strings.Repeat("x ", n)+`; do /bin/true & done; wait; echo done`)
		if st.Code != 0 || !strings.Contains(out, "done") {
			t.Fatalf("status %+v output %q", st, out)
		}
		trues := 0
		for _, e := range r.execs {
			if e.Path == "/bin/true" {
				trues++
			}
		}
		if trues != n || st.Stops.Calls != int64(len(r.execs)) {
			t.Errorf("decided %d execs of /bin/true (want %d), %d notifications for %d exec events", trues, n, st.Stops.Calls, len(r.execs))
		}
	})

	t.Run("in flight at stop", func(t *testing.T) {
		dir := t.TempDir()
		fifo, out := filepath.Join(dir, "fifo"), filepath.Join(dir, "out")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		g := &gate{hold: "/bin/echo", inflight: make(chan struct{}), release: make(chan struct{})}
		go func() {
			<-g.inflight
			// The exec waits in the handler: let the child's shell exit,
			// wait until Run has reaped it (it stops the loop then), and
			// only then let the handler answer.
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err == nil {
				_, _ = f.WriteString("go\n")
				f.Close()
			}
			main := int(g.first.Load())
			deadline := time.Now().Add(10 * time.Second)
			for unix.Kill(main, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(g.release)
		}()
		st, _ := runShMode(t, ModeUserNotify, g, `( /bin/echo ran > '`+out+`' ) & read x < '`+fifo+`'; exit 3`)
		if st.Code != 3 {
			t.Fatalf("status %+v", st)
		}
		waitFor(t, "the background echo's output", func() bool {
			b, _ := os.ReadFile(out)
			return strings.TrimSpace(string(b)) == "ran"
		})
		if len(g.outcomes) != 0 {
			t.Errorf("outcomes %+v for allowed calls", g.outcomes)
		}
	})

	waitFor(t, "the supervisor's goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
	if n := testenv.OpenFDs(t); n != fds {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			t.Log(e.Name(), l)
		}
		t.Errorf("%d open fds after the runs, %d before: the listener or the stop eventfd leaked", n, fds)
	}
}

// TestReadString reads NUL-terminated strings of this process's memory:
// short ones (one read), ones longer than the first read, ones that cross
// a page, and one longer than maxString (cut there).
func TestReadString(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 4*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for _, c := range []struct {
		off, n int
	}{{0, 0}, {0, 9}, {100, 255}, {100, 256}, {100, 1000}, {4096 - 10, 40}, {4096 - 300, 600}, {0, maxString + 100}} {
		for i := range mem {
			mem[i] = 0
		}
		want := strings.Repeat("abcdefg/", c.n/8+1)[:c.n]
		copy(mem[c.off:], want)
		got, err := readString(os.Getpid(), uint64(uintptr(unsafe.Pointer(&mem[c.off]))))
		if c.n > maxString {
			want = want[:maxString]
		}
		if err != nil || got != want {
			t.Errorf("string of %d bytes at offset %d: got %d bytes (%v), want %d", c.n, c.off, len(got), err, len(want))
		}
	}
	// The string runs into an unmapped page: an error, not a hang or a short string.
	if err := unix.Mprotect(mem[2*4096:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	copy(mem[2*4096-5:2*4096], "abcde")
	if got, err := readString(os.Getpid(), uint64(uintptr(unsafe.Pointer(&mem[2*4096-5])))); err == nil {
		t.Errorf("string running into a PROT_NONE page read as %q", got)
	}
}
