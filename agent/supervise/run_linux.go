//go:build linux && (amd64 || arm64)

package supervise

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwarded are the signals the supervisor passes on to the child.
var forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT, unix.SIGTTIN, unix.SIGTTOU,
}

// ptraceOptions leave out PTRACE_O_TRACEEXEC: an exec event would cost a
// stop per program started, and the supervisor learns what a process runs
// when an audit needs it (exeOf). A seized tracee gets no SIGTRAP at exec.
// PTRACE_O_TRACESYSGOOD marks the syscall stops of threads followed after a
// connect (follow_linux.go); no other thread has them.
const ptraceOptions = unix.PTRACE_O_TRACESECCOMP | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
	unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESYSGOOD

// Run starts cfg.Path as a child, supervises it until it ends and returns its
// status. With a nil Handler nothing is traced. An error means the child
// could not be started or supervision could not be set up; the child is not
// running then.
func Run(cfg Config) (Status, error) {
	if len(cfg.Argv) == 0 {
		return Status{}, errors.New("run: empty argv")
	}
	// Every ptrace request must come from the thread that attached.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	var pid int
	var err error
	listener, stopNotify := -1, -1
	switch {
	case cfg.Handler == nil:
		pid, err = startPlain(cfg)
	case cfg.Mode == ModeUserNotify:
		// The notifier's stop signal, made first: nothing to undo if it fails.
		if stopNotify, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
			return Status{}, fmt.Errorf("eventfd for the notifier: %w", err)
		}
		if pid, listener, err = startNotify(cfg); err != nil {
			unix.Close(stopNotify)
		}
	default:
		defer quietChildStops()()
		pid, err = startTraced(cfg)
	}
	if err != nil {
		return Status{}, err
	}
	// Deferred first, so it runs last, once no call can start a relay.
	relays := &relaySet{}
	if onRelaySet != nil {
		onRelaySet(relays)
	}
	defer relays.drain()
	// The notifier finishes the notification it holds before Run returns:
	// a refused caller may exit (and the child with it) before the loop
	// reports the refusal to Handler.Enforced, whose audit would be lost.
	// Deferred first, so it runs after close(done); the eventfd wakes the
	// notifier out of its poll (the 8 bytes make a non-zero counter).
	loopDone := make(chan struct{})
	defer func() {
		if listener >= 0 {
			_, _ = unix.Write(stopNotify, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			<-loopDone
			unix.Close(stopNotify)
		}
	}()
	done := make(chan struct{})
	defer close(done)
	var n *tracer
	if listener >= 0 {
		// The notifier decides; this goroutine only waits, as for a plain child.
		n = &tracer{h: cfg.Handler, notify: true, relays: relays, procs: map[int]*proc{}, tcpPeers: map[string]netip.AddrPort{}}
		go func() {
			defer close(loopDone)
			n.notifyLoop(listener, stopNotify)
		}()
		cfg.Handler = nil
	}
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = unix.Kill(pid, s.(syscall.Signal))
			case <-done:
				return
			}
		}
	}()
	t := &tracer{h: cfg.Handler, main: pid, relays: relays, procs: map[int]*proc{}, tcpPeers: map[string]netip.AddrPort{}}
	if cfg.Handler != nil {
		self, _ := os.Executable()
		t.procs[pid] = &proc{exe: self, real: self}
	}
	if onTracer != nil {
		onTracer(t)
	}
	st, err := t.loop()
	t.closeFDDirs()
	st.Stops = t.stops
	if n != nil {
		st.Stops.Calls = n.notified.Load()
	}
	return st, err
}

// files returns the child's stdin, stdout and stderr, /dev/null for the
// missing ones; release closes the files it opened once the child holds
// its copies.
func files(cfg Config) (fs []*os.File, release func(), err error) {
	out := make([]*os.File, 3)
	var opened []*os.File
	release = func() {
		for _, f := range opened {
			f.Close()
		}
	}
	for i, f := range cfg.Files {
		if f == nil {
			n, err := os.Open(os.DevNull)
			if err != nil {
				release()
				return nil, nil, err
			}
			opened = append(opened, n)
			f = n
		}
		out[i] = f
	}
	return out, release, nil
}

func startPlain(cfg Config) (int, error) {
	fs, release, err := files(cfg)
	if err != nil {
		return 0, err
	}
	defer release()
	p, err := os.StartProcess(cfg.Path, cfg.Argv, &os.ProcAttr{Env: cfg.Env, Files: fs})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", cfg.Path, err)
	}
	pid := p.Pid
	_ = p.Release() // its pidfd (Release clears Pid); the supervisor waits with wait4
	return pid, nil
}

func startTraced(cfg Config) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find own executable for the supervised child: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("sync pipe: %w", err)
	}
	defer r.Close()
	defer w.Close()
	fs, release, err := files(cfg)
	if err != nil {
		return 0, err
	}
	defer release()
	argv := append([]string{self, stubMarker(false, cfg), cfg.Path}, cfg.Argv...)
	p, err := os.StartProcess(self, argv, &os.ProcAttr{Env: cfg.Env, Files: append(fs, r)})
	if err != nil {
		return 0, fmt.Errorf("start supervised child: %w", err)
	}
	defer p.Release() // its pidfd; the supervisor waits with wait4
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(p.Pid), 0, ptraceOptions, 0, 0); e != 0 {
		_ = p.Kill()
		var ws unix.WaitStatus
		_, _ = unix.Wait4(p.Pid, &ws, 0, nil)
		return 0, fmt.Errorf("ptrace seize: %w", e)
	}
	if _, err := w.Write([]byte{1}); err != nil {
		_ = p.Kill()
		return 0, fmt.Errorf("release supervised child: %w", err)
	}
	return p.Pid, nil
}

// proc is what the tracer knows of one traced thread.
type proc struct {
	exe     string // the executable, as shown in audits (the name it was called by)
	real    string // the executable as the kernel resolved it (/proc/PID/exe at the exec)
	pending string // path of the exec this thread asked for, until it happens
}

type tracer struct {
	stops    Stops        // ptrace stops (the tracer's goroutine only)
	notified atomic.Int64 // notifications answered (user notification)
	h        Handler
	main     int
	procs    map[int]*proc
	tcpPeers map[string]netip.AddrPort // "socket:[inode]" → peer, for connected TCP sockets
	// udpPeers are the peers of connected datagram sockets; a datagram
	// socket can connect again, so every connect (the only way to change
	// a peer, and a supervised call) clears them.
	udpPeers map[string]netip.AddrPort
	fdDirs   map[int]int // thread → its /proc/TID/fd, open (fdLink)
	relays   *relaySet   // the DNS relays started (dnsproxy_linux.go)
	notify   bool        // seccomp user notification instead of ptrace
	pay      payloads    // first payloads of new connections (follow_linux.go)
	// interrupted are refused calls (user notification) whose caller a
	// signal took out of its wait before the answer, by task: the kernel
	// restarts such a call and it comes again.
	interrupted map[uint32]notifiedCall
	// sweepAt is the size of procs at which the next fork sweeps it (sweep).
	sweepAt int
}

// onTracer, when set (tests), is called with the ptrace tracer of each Run.
var onTracer func(*tracer)

// procsSweepFloor is the fewest entries of procs that start a sweep.
var procsSweepFloor = 1024

// sweep forgets the threads that no longer exist. A thread that is not its
// process's leader and execs takes the leader's number; its own number ends
// with no exit reported (there is no exec event to tell), so its entry
// would stay for the life of the app, one per such exec (a Go program's
// syscall.Exec, from whichever thread runs it). A sweep runs when procs
// has doubled since the last one (at least procsSweepFloor entries): its
// cost, a lookup in /proc per entry, is a constant per fork.
func (t *tracer) sweep() {
	gone := func(tid int) bool {
		p := procRel(strconv.Itoa(tid))
		return tid != t.main && unix.Faccessat(p.dirfd, p.path, unix.F_OK, 0) == unix.ENOENT
	}
	for tid := range t.procs {
		if gone(tid) {
			delete(t.procs, tid)
			delete(t.pay.follows, tid)
		}
	}
	for tid := range t.pay.follows {
		if gone(tid) {
			delete(t.pay.follows, tid)
		}
	}
	t.sweepAt = 2 * len(t.procs)
}

func (t *tracer) loop() (Status, error) {
	var y yielder
	for {
		y.yield()
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Status{}, fmt.Errorf("wait for the supervised child: %w", err)
		}
		switch {
		case ws.Exited() || ws.Signaled():
			delete(t.procs, tid)
			delete(t.pay.follows, tid)
			if tid == t.main {
				if ws.Signaled() {
					return Status{Signal: syscall.Signal(ws.Signal())}, nil
				}
				return Status{Code: ws.ExitStatus()}, nil
			}
		case ws.Stopped():
			t.stopped(tid, ws)
		}
	}
}

func (t *tracer) cont(tid, sig int) {
	// ESRCH: the thread died meanwhile (SIGKILL, exit of its group); its exit is reported later.
	if t.followed(tid) {
		_ = unix.PtraceSyscall(tid, sig)
		return
	}
	_ = unix.PtraceCont(tid, sig)
}

func (t *tracer) stopped(tid int, ws unix.WaitStatus) {
	sig := ws.StopSignal()
	if sig == unix.SIGTRAP|0x80 { // PTRACE_O_TRACESYSGOOD: a followed thread's syscall stop
		t.syscallStop(tid)
		return
	}
	event := ws.TrapCause()
	if sig != unix.SIGTRAP {
		t.stops.Signals++
		if event == unix.PTRACE_EVENT_STOP {
			// Group-stop of a seized tracee: keep it stopped, as without a tracer.
			_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_LISTEN, uintptr(tid), 0, 0, 0, 0)
			return
		}
		t.cont(tid, int(sig)) // signal-delivery-stop: deliver the signal
		return
	}
	switch event {
	case unix.PTRACE_EVENT_SECCOMP:
		t.stops.Calls++
		t.seccomp(tid)
		t.cont(tid, 0)
	case unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_CLONE:
		t.stops.Forks++
		// The child inherits the parent's executable until it execs. Its
		// initial stop may have come first; it was resumed at once, with
		// an empty entry (never hold a child: if the parent dies before
		// its event, nothing would release it).
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil {
			child := int(msg)
			p := t.procs[child]
			if p == nil {
				p = &proc{}
				t.procs[child] = p
			}
			if parent := t.procs[tid]; parent != nil && p.exe == "" {
				p.exe, p.real = parent.exe, parent.real
			}
			if len(t.procs) >= max(t.sweepAt, procsSweepFloor) {
				t.sweep()
			}
		}
		t.cont(tid, 0)
	case unix.PTRACE_EVENT_STOP:
		t.stops.Starts++
		// The initial stop of a new child (or thread).
		if _, known := t.procs[tid]; !known {
			t.procs[tid] = &proc{}
		}
		t.cont(tid, 0)
	default:
		t.stops.Execs++ // not asked for (PTRACE_O_TRACEEXEC is off); resume
		t.cont(tid, 0)
	}
}

// yielder lets the Go scheduler see a goroutine that does nothing but
// system calls (the tracer's wait loop, the notifier's poll loop). Such a
// goroutine never changes its P's scheduling tick, so every 10 ms sysmon
// takes it for a runaway: it takes the P away in the middle of a system
// call, starts another thread for it, and then polls every 20 µs for a
// while, waking a thread that competes with the app for the CPU. A
// Gosched every yieldEvery ticks the scheduler on.
type yielder struct{ last time.Time }

// yieldEvery stays below sysmon's 10 ms (forcePreemptNS): a P whose tick
// changed within the last 10 ms is never taken for a runaway. 2 ms cost a
// Gosched (and the wake-up of another thread) nearly every launch when
// launches come ~1.5 ms apart; 8 ms cut the supervisor's CPU per launch by
// ~12% (BenchmarkLaunch/notify, 3 interleaved runs: 95/85/90 -> 86/79/76
// µs) with no more switches per call in BenchmarkRoundTrip with
// TG_BENCH_GAP (1.06-1.17 -> 1.04).
const yieldEvery = 8 * time.Millisecond

func (y *yielder) yield() {
	if now := time.Now(); now.Sub(y.last) >= yieldEvery {
		y.last = now
		runtime.Gosched()
	}
}

// shownExe names the running executable of tid the way audits show it: the
// path the program was started by when it names the same file (so /bin/sh
// shows as /bin/dash, not /usr/bin/dash), else the shortest path that names
// the real binary.
func shownExe(tid int, asked string) string {
	real, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", tid))
	if err != nil {
		return asked
	}
	realInfo, err := os.Stat(real)
	if err != nil {
		return real
	}
	if asked != "" {
		if target := lastLink(asked); filepath.Base(target) == filepath.Base(real) {
			if fi, err := os.Stat(target); err == nil && os.SameFile(fi, realInfo) {
				return target
			}
		}
	}
	if short, ok := strings.CutPrefix(real, "/usr"); ok {
		if fi, err := os.Stat(short); err == nil && os.SameFile(fi, realInfo) {
			return short
		}
	}
	return real
}

// lastLink resolves symlinks of the last path element only: /bin/sh -> /bin/dash.
func lastLink(p string) string {
	for range 8 {
		target, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return p
}
