package supervise

import (
	"errors"
	"net/netip"
	"os"
	"syscall"
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

// ExecEvent is a program about to start (execve or execveat).
type ExecEvent struct {
	PID int
	// Path is the program as the app named it, made absolute.
	Path string
	// Resolved is Path with symlinks resolved ("" when it cannot be).
	Resolved string
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
	// Exe is its executable; the supervisor leaves it empty and reads it on
	// demand (Executable).
	Exe string

	exe func() string
}

// Executable returns Exe, reading it from /proc when it is not set.
func (c Caller) Executable() string {
	if c.Exe == "" && c.exe != nil {
		return c.exe()
	}
	return c.Exe
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
}

// Status is how the child ended.
type Status struct {
	// Code is the exit code when the child exited normally.
	Code int
	// Signal is the signal that killed the child, or 0.
	Signal syscall.Signal
}

// ExitCode returns the shell convention: Code, or 128+Signal.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}
