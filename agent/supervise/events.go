package supervise

import (
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// ErrUnsupported means syscall supervision cannot run on this platform.
var ErrUnsupported = errors.New("syscall supervision is not supported on this platform")

// Verdict is a Handler's answer to one stopped system call.
type Verdict int

// The verdicts.
const (
	// Allow lets the system call run.
	Allow Verdict = iota
	// Deny fails the system call with EPERM before it takes effect.
	Deny
)

// Outcome is what became of a Deny verdict; the supervisor reports it to
// Handler.Enforced after every Deny, so an audit never claims a refusal that
// did not happen.
type Outcome int

// The outcomes of a Deny.
const (
	// Refused: the system call failed with EPERM; it did not run.
	Refused Outcome = iota
	// Killed: the call could not be made to fail, so the calling process
	// was killed (SIGKILL) before the call ran.
	Killed
	// Gone: the process died before the answer (killed from elsewhere);
	// the call did not run.
	Gone
	// Unenforced: the call could neither be refused nor the process
	// killed; the call may have run.
	Unenforced
	// Interrupted: the call was refused, but a signal took the caller out
	// of its wait before the refusal reached it (it saw EINTR, not EPERM)
	// and it did not make the call again; the call did not run.
	Interrupted
)

// String names the outcome for logs.
func (o Outcome) String() string {
	switch o {
	case Refused:
		return "refused"
	case Killed:
		return "killed"
	case Gone:
		return "gone"
	case Interrupted:
		return "interrupted"
	}
	return "unenforced"
}

// ExecEvent is a program about to start (execve or execveat).
type ExecEvent struct {
	PID int
	// Path is the program as the app named it, made absolute (the name
	// the program was called by).
	Path string
	// Resolved is the file the kernel will run: Path with every symlink
	// resolved in the calling process's root ("" when it cannot be).
	Resolved string
	// Ctime is the status change time of Resolved, read from the file the
	// supervisor's lookup opened (zero when it was not read).
	Ctime time.Time
	// Parent is the executable of the process that asks for the exec, and
	// Argv the new program's arguments. The supervisor leaves them empty and
	// reads them on demand (ParentExe, Args), since most execs need neither.
	Parent string
	Argv   []string

	parent func() string
	argv   func() []string
}

// ParentExe returns Parent, reading it from the process when it is not set.
// Call it only inside the Handler method, while the caller still waits.
func (e ExecEvent) ParentExe() string {
	if e.Parent == "" && e.parent != nil {
		return e.parent()
	}
	return e.Parent
}

// Args returns Argv, reading it from the process's memory when it is not set.
// Call it only inside the Handler method, while the caller still waits.
func (e ExecEvent) Args() []string {
	if e.Argv == nil && e.argv != nil {
		return e.argv()
	}
	return e.Argv
}

// Caller is the process making a supervised network call.
type Caller struct {
	PID int
	// Exe is its executable as the program was called (/bin/wget); the
	// supervisor leaves it empty and reads it on demand (Executable).
	Exe string
	// Real is the file that really runs, as the kernel resolved it
	// (/usr/bin/wget on a usr-merged image); read on demand (RealExe).
	Real string

	// from reads Exe and Real of PID on demand (the supervisor). An
	// interface holding a pointer, not two closures: a Caller is made at
	// every connect and send, and closures cost two allocations each time.
	from exeSource
}

// exeSource reads what a process runs, as Caller's fields word it.
type exeSource interface {
	exeOf(pid int) string
	realOf(pid int) string
}

// Executable returns Exe, reading it from /proc when it is not set.
func (c Caller) Executable() string {
	if c.Exe == "" && c.from != nil {
		return c.from.exeOf(c.PID)
	}
	return c.Exe
}

// RealExe returns Real, reading it from /proc when it is not set; it falls
// back to Executable when the process cannot be read.
func (c Caller) RealExe() string {
	if c.Real == "" && c.from != nil {
		c.Real = c.from.realOf(c.PID)
	}
	if c.Real == "" {
		return c.Executable()
	}
	return c.Real
}

// ConnectEvent is an outbound connect to an IPv4 or IPv6 address.
type ConnectEvent struct {
	Caller
	Addr netip.AddrPort
}

// DNSEvent is a DNS query sent to port 53 (UDP or TCP).
type DNSEvent struct {
	Caller
	Names  []string
	Server netip.AddrPort
	// Relayed marks a query read by the supervisor's DNS relay (sent with
	// write on a connected UDP socket) rather than at a stopped call: the
	// relay answers a denied query REFUSED and never forwards it, and no
	// Enforced call follows.
	Relayed bool
}

// ListenEvent is a socket that starts listening (TCP listen, or bind of a
// UDP socket to a port).
type ListenEvent struct {
	Caller
	Port     uint16
	Protocol string // "tcp" or "udp"
}

// Handler decides on stopped system calls. Its methods run on the tracer's
// thread while the calling thread of the app waits: they must be quick and
// must not block (queue audits, do not send them inline).
type Handler interface {
	Exec(ExecEvent) Verdict
	Connect(ConnectEvent) Verdict
	DNS(DNSEvent) Verdict
	Listen(ListenEvent) Verdict
	// Foreign is a supervised system call made through a foreign ABI (32-bit
	// int 0x80 on amd64) that the tracer cannot decode.
	Foreign(pid int, nr int) Verdict
	// Enforced follows every Deny of a stopped call (on the same goroutine, before the next
	// call of the same pid is decided) with what really happened; err says
	// why a refusal failed. It is also called without a preceding Deny when
	// a supervised call could not even be read (o is then Killed, Gone or
	// Unenforced): such a call is never let through unchecked.
	Enforced(pid int, o Outcome, err error)
}

// Mode is how supervised system calls reach the supervisor.
type Mode int

// The supervision modes.
const (
	// ModePtrace: the filter returns SECCOMP_RET_TRACE and the supervisor
	// is the tree's ptrace tracer (fork, clone and exec events too).
	ModePtrace Mode = iota
	// ModeUserNotify: the filter returns SECCOMP_RET_USER_NOTIF and the
	// supervisor answers on the listener fd (Linux 5.9+); no ptrace, so the
	// app may use ptrace itself.
	ModeUserNotify
)

// String names the mode for logs.
func (m Mode) String() string {
	if m == ModeUserNotify {
		return "seccomp user notification"
	}
	return "ptrace with seccomp (SECCOMP_RET_TRACE)"
}

// Config says what to run and how.
type Config struct {
	// Path is the program to run (already looked up in PATH); Argv its
	// argument vector, Argv[0] included; Env its environment.
	Path string
	Argv []string
	Env  []string
	// Files are the child's stdin, stdout and stderr (nil: /dev/null).
	Files [3]*os.File
	// Handler receives the supervised system calls. Nil means no supervision:
	// the child runs with no seccomp filter and no ptrace at all.
	Handler Handler
	// Mode chooses the mechanism; the zero value is ModePtrace.
	Mode Mode
	// IgnoreSends leaves sendto, sendmsg and sendmmsg out of the filter:
	// they run with no stop, and the handler never sees a DNS query or a
	// first payload sent with them (a UDP connect to port 53 is still
	// relayed; write(2) is never seen anyway). Only for a handler that can
	// need neither for the whole run: a policy that cannot change and has no
	// domain rules, with the detectors off. A filter cannot be changed once
	// installed, so a policy that may change later needs the stops.
	IgnoreSends bool
}

// Status is how the child ended.
type Status struct {
	// Code is the exit code when the child exited normally.
	Code int
	// Signal is the signal that killed the child, or 0.
	Signal syscall.Signal
	// Stops counts the times supervision interrupted the app.
	Stops Stops
}

// Stops counts the interruptions of the app by kind: what supervision
// costs, since each one is a round trip through the supervisor.
type Stops struct {
	// Calls are supervised system calls (seccomp stops or notifications).
	Calls int64
	// Forks are fork, vfork and clone events (ptrace only).
	Forks int64
	// Starts are the first stops of new processes and threads (ptrace only).
	Starts int64
	// Execs are exec events (ptrace only; none since the supervisor learns
	// a new program lazily).
	Execs int64
	// Signals are signal-delivery and group stops (ptrace only).
	Signals int64
	// Followed are syscall stops of threads followed after a connect for
	// their first payload (ptrace only; PayloadHandler).
	Followed int64
}

// ExitCode returns the shell convention: Code, or 128+Signal.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}
