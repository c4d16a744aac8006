//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// benchLoopArg makes the test binary a workload: argv [self, benchLoopArg, N]
// starts /bin/true N times (fork+exec+wait, as bench/defender's workload).
const benchLoopArg = "__taskguard_bench_execloop"

// benchCallArg makes the test binary call connect(-1, NULL, 0) N times: a
// supervised call that the kernel fails at once (EBADF), so that one op is
// one round trip through the supervisor.
const benchCallArg = "__taskguard_bench_callloop"

// benchConnArg makes the test binary make N TCP connects to a loopback
// listener of its own (bench/defender's connect workload).
const benchConnArg = "__taskguard_bench_connloop"

// benchFilesArg makes the test binary create, write and remove N files in
// $TG_BENCH_DIR (bench/defender's file workload: calls nothing stops).
const benchFilesArg = "__taskguard_bench_filesloop"

// benchSendArg makes the test binary send(2) N datagrams of 64 bytes on
// a UDP socket connected to a loopback port (bench/defender's udpsend
// workload): sendto with no address, a supervised call on a connected
// socket, as a C program's send.
const benchSendArg = "__taskguard_bench_sendloop"

// benchSendmsgArg makes the test binary sendmsg(2) N messages of 64 bytes
// on a TCP connection to a loopback listener of its own (bench/defender's
// tcpsendmsg workload).
const benchSendmsgArg = "__taskguard_bench_sendmsgloop"

func init() {
	if len(os.Args) != 3 || (os.Args[1] != benchLoopArg && os.Args[1] != benchCallArg && os.Args[1] != benchConnArg && os.Args[1] != benchFilesArg && os.Args[1] != benchSendArg && os.Args[1] != benchSendmsgArg) {
		return
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		os.Exit(2)
	}
	if os.Args[1] == benchConnArg || os.Args[1] == benchFilesArg || os.Args[1] == benchSendArg || os.Args[1] == benchSendmsgArg {
		loop := connLoop
		switch os.Args[1] {
		case benchFilesArg:
			loop = filesLoop
		case benchSendArg:
			loop = sendLoop
		case benchSendmsgArg:
			loop = sendmsgLoop
		}
		if err := loop(n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Args[1] == benchCallArg {
		gap := os.Getenv("TG_BENCH_GAP") != ""
		for range n {
			if _, _, e := unix.Syscall(unix.SYS_CONNECT, ^uintptr(0), 0, 0); e != unix.EBADF {
				fmt.Fprintln(os.Stderr, "connect(-1):", e)
				os.Exit(1)
			}
			if gap { // work between calls, as an app does
				for t := time.Now(); time.Since(t) < 50*time.Microsecond; {
				}
			}
		}
		os.Exit(0)
	}
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

func connLoop(n int) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

func sendLoop(n int) error {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer pc.Close()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: pc.LocalAddr().(*net.UDPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	msg := make([]byte, 64)
	for range n {
		// The receive buffer fills and drops the rest: the sends never block.
		if err := unix.Send(fd, msg, 0); err != nil {
			return err
		}
	}
	return nil
}

func sendmsgLoop(n int) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 64<<10)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
		}
	}()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: l.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return err
	}
	msg := make([]byte, 64)
	for range n {
		if _, err := unix.SendmsgN(fd, msg, nil, nil, 0); err != nil {
			unix.Close(fd)
			return err
		}
	}
	unix.Close(fd)
	<-done
	return nil
}

func filesLoop(n int) error {
	dir := os.Getenv("TG_BENCH_DIR")
	for i := range n {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// allowAll decides every call Allow, reading nothing more: the cost
// measured is the supervisor's own.
type allowAll struct{}

func (allowAll) Exec(ExecEvent) Verdict       { return Allow }
func (allowAll) Connect(ConnectEvent) Verdict { return Allow }
func (allowAll) DNS(DNSEvent) Verdict         { return Allow }
func (allowAll) Listen(ListenEvent) Verdict   { return Allow }
func (allowAll) Foreign(int, int) Verdict     { return Allow }
func (allowAll) Enforced(int, Outcome, error) {}

// allowWatch is allowAll that also asks for every connection's first
// payload, as the launcher does while the crypto-miner detector is on.
type allowWatch struct{ allowAll }

func (allowWatch) WantPayload(ConnectEvent) bool { return true }
func (allowWatch) Payload(PayloadEvent) Verdict  { return Allow }

// workloadRun is one supervised run of this test binary's loop arg for
// b.N operations, with the CPU time and context switches of the
// supervisor (this process) and of the app around it.
type workloadRun struct {
	st          Status
	sup, app    float64 // CPU µs per op
	supSwitches float64 // context switches of the supervisor per op
	n           float64
}

// benchWorkload runs arg under native, ptrace and user notification (h as
// the handler of the last two), one sub-benchmark each, and hands each
// run to report for its metrics.
func benchWorkload(b *testing.B, arg string, h Handler, env []string, report func(b *testing.B, r workloadRun)) {
	testenv.RequireRoot(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mode Mode
		h    Handler
	}{{"native", ModePtrace, nil}, {"ptrace", ModePtrace, h}, {"notify", ModeUserNotify, h}} {
		b.Run(c.name, func(b *testing.B) {
			var self0, kids0, self1, kids1 unix.Rusage
			_ = unix.Getrusage(unix.RUSAGE_SELF, &self0)
			_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids0)
			st, err := Run(Config{Path: self, Argv: []string{self, arg, strconv.Itoa(b.N)}, Env: env, Handler: c.h, Mode: c.mode})
			if err != nil || st.Code != 0 {
				b.Fatalf("run: %v, status %+v", err, st)
			}
			_ = unix.Getrusage(unix.RUSAGE_SELF, &self1)
			_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids1)
			n := float64(b.N)
			report(b, workloadRun{
				st:          st,
				sup:         float64(cpuNanos(self1)-cpuNanos(self0)) / 1e3 / n,
				app:         float64(cpuNanos(kids1)-cpuNanos(kids0)) / 1e3 / n,
				supSwitches: float64(self1.Nvcsw+self1.Nivcsw-self0.Nvcsw-self0.Nivcsw) / n,
				n:           n,
			})
		})
	}
}

// BenchmarkLaunch is the bench's launch workload under each mechanism: one
// op is a fork+exec+wait of /bin/true by a supervised Go program. Compare
// ns/op with the native sub-benchmark for the ratio; -cpuprofile profiles
// the supervisor (the workload is another process).
func BenchmarkLaunch(b *testing.B) {
	benchWorkload(b, benchLoopArg, allowAll{}, nil, func(b *testing.B, r workloadRun) {
		s := r.st.Stops
		b.ReportMetric(float64(s.Calls+s.Forks+s.Starts+s.Signals+s.Execs)/r.n, "stops/op")
		// By kind, for the ptrace run (user notification has calls only).
		b.ReportMetric(float64(s.Calls)/r.n, "calls/op")
		b.ReportMetric(float64(s.Forks)/r.n, "forks/op")
		b.ReportMetric(float64(s.Starts)/r.n, "starts/op")
		b.ReportMetric(float64(s.Signals)/r.n, "signals/op")
		b.ReportMetric(r.supSwitches, "sup-switches/op")
		// CPU time per launch, which a loaded machine inflates far less
		// than wall time: the supervisor's (this process) and the app's.
		b.ReportMetric(r.sup, "sup-µs/op")
		b.ReportMetric(r.app, "app-µs/op")
	})
}

// BenchmarkConnect is the bench's connect workload under each mechanism:
// one op is a TCP connect (and its accept) on loopback, with every
// connection's first payload watched. It reports the stops per connect by
// kind and the CPU time of the supervisor and of the app.
func BenchmarkConnect(b *testing.B) {
	benchWorkload(b, benchConnArg, allowWatch{}, nil, func(b *testing.B, r workloadRun) {
		s := r.st.Stops
		b.ReportMetric(float64(s.Calls)/r.n, "calls/op")
		b.ReportMetric(float64(s.Signals)/r.n, "signals/op")
		b.ReportMetric(float64(s.Followed)/r.n, "followed/op")
		b.ReportMetric(float64(s.Forks+s.Starts)/r.n, "forks/op")
		b.ReportMetric(r.sup, "sup-µs/op")
		b.ReportMetric(r.app, "app-µs/op")
	})
}

// BenchmarkUDPSend is the bench's udpsend workload: one op is a send(2)
// on a connected UDP socket, with every connection's first payload
// watched. It reports the stops per send and the supervisor's CPU time.
func BenchmarkUDPSend(b *testing.B) {
	benchWorkload(b, benchSendArg, allowWatch{}, nil, func(b *testing.B, r workloadRun) {
		b.ReportMetric(float64(r.st.Stops.Calls)/r.n, "calls/op")
		b.ReportMetric(r.sup, "sup-µs/op")
		b.ReportMetric(r.supSwitches, "sup-switches/op")
	})
}

// BenchmarkTCPSendmsg is the bench's tcpsendmsg workload: one op is a
// sendmsg(2) on a TCP connection, its first payload watched.
func BenchmarkTCPSendmsg(b *testing.B) {
	benchWorkload(b, benchSendmsgArg, allowWatch{}, nil, func(b *testing.B, r workloadRun) {
		b.ReportMetric(float64(r.st.Stops.Calls)/r.n, "calls/op")
		b.ReportMetric(r.sup, "sup-µs/op")
		b.ReportMetric(r.app, "app-µs/op")
		b.ReportMetric(r.supSwitches, "sup-switches/op")
	})
}

// BenchmarkFiles is the bench's file workload (create, write, remove) under
// each mechanism: system calls the filter lets through, so any stop it
// reports is overhead (signals to a traced thread, forks of the runtime).
func BenchmarkFiles(b *testing.B) {
	b.Setenv("TG_BENCH_DIR", b.TempDir())
	benchWorkload(b, benchFilesArg, allowAll{}, os.Environ(), func(b *testing.B, r workloadRun) {
		s := r.st.Stops
		b.ReportMetric(float64(s.Calls)/r.n, "calls/op")
		b.ReportMetric(float64(s.Signals)/r.n, "signals/op")
		b.ReportMetric(float64(s.Forks+s.Starts)/r.n, "forks/op")
	})
}

// BenchmarkRoundTrip is one supervised call that the handler allows
// without reading anything: the cost of the round trip itself (a seccomp
// stop, or a notification) against the bare call.
func BenchmarkRoundTrip(b *testing.B) {
	benchWorkload(b, benchCallArg, allowAll{}, nil, func(b *testing.B, r workloadRun) {
		b.ReportMetric(r.sup, "sup-µs/op")
		b.ReportMetric(r.supSwitches, "sup-switches/op")
	})
}

// BenchmarkExecDecision is the supervisor's work on one exec notification
// before the handler answers: read the path from the caller's memory and
// resolve it in the caller's root (here the caller is this process, the
// path /bin/true).
func BenchmarkExecDecision(b *testing.B) {
	path := append([]byte("/bin/true"), 0)
	argv := []uintptr{uintptr(unsafe.Pointer(&path[0])), 0}
	t := &tracer{h: allowAll{}, notify: true, procs: map[int]*proc{}}
	self := unix.Gettid()
	for b.Loop() {
		if v := t.decide(self, unix.SYS_EXECVE, [6]uint64{uint64(uintptr(unsafe.Pointer(&path[0]))), uint64(uintptr(unsafe.Pointer(&argv[0])))}); v != Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkResolve compares the two ways of resolving a path in a process's
// root: walking it (an lstat of /proc/PID/root/... per component) and one
// openat2 RESOLVE_IN_ROOT.
func BenchmarkResolve(b *testing.B) {
	root := "/proc/" + strconv.Itoa(os.Getpid()) + "/root"
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if _, err := resolveUnder(root, "/bin/true"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			if _, err, ok := resolveByKernel(root, "/bin/true"); err != nil || !ok {
				b.Fatal(err, ok)
			}
		}
	})
}

func cpuNanos(r unix.Rusage) int64 { return r.Utime.Nano() + r.Stime.Nano() }

// BenchmarkConnectDecision is the supervisor's work on one connect
// notification before the answer: read the sockaddr from the caller's
// memory, ask the handler (which watches the first payload) and note the
// socket. The caller is this process, the destination loopback.
func BenchmarkConnectDecision(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(s)
	port := l.Addr().(*net.TCPAddr).Port
	sa := [16]byte{unix.AF_INET, 0, byte(port >> 8), byte(port), 127, 0, 0, 1}
	t := &tracer{h: allowWatch{}, notify: true, procs: map[int]*proc{}}
	self := unix.Gettid()
	args := [6]uint64{uint64(s), uint64(uintptr(unsafe.Pointer(&sa[0]))), uint64(len(sa))}
	b.ReportAllocs()
	for b.Loop() {
		if v := t.decide(self, unix.SYS_CONNECT, args); v != Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkSendDecision is the supervisor's work on one send(2) on a
// connected UDP socket (the caller is this process) while another
// connection's first payload is still awaited: the peer from the cache,
// the watch looked up by the socket's name.
func BenchmarkSendDecision(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(s)
	if err := unix.Connect(s, &unix.SockaddrInet4{Port: pc.LocalAddr().(*net.UDPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	t := &tracer{h: allowWatch{}, notify: true, procs: map[int]*proc{}}
	self := unix.Gettid()
	t.pay.watch = map[string]watched{"socket:[1]": {}} // another socket, silent so far
	msg := make([]byte, 64)
	args := [6]uint64{uint64(s), uint64(uintptr(unsafe.Pointer(&msg[0]))), uint64(len(msg))}
	b.ReportAllocs()
	for b.Loop() {
		if v := t.decide(self, unix.SYS_SENDTO, args); v != Allow {
			b.Fatal("denied")
		}
	}
	if len(t.pay.watch) != 1 {
		b.Fatalf("the watch of the other socket changed: %v", t.pay.watch)
	}
}
