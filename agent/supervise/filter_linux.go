//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Data values the filter attaches to SECCOMP_RET_TRACE (for debugging with
// PTRACE_GETEVENTMSG; the tracer tells the ABI by the number).
const (
	traceNative  = 1
	traceForeign = 2
)

var nativeSupervised = []uint32{
	unix.SYS_EXECVE, unix.SYS_EXECVEAT, unix.SYS_CONNECT, unix.SYS_SENDTO,
	unix.SYS_SENDMSG, unix.SYS_SENDMMSG, unix.SYS_BIND, unix.SYS_LISTEN,
	// Rare calls, for the process-injection detector (inject_linux.go).
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
}

// seccompProgram builds the classic BPF filter: supervised calls of the
// native and the i386 ABI return SECCOMP_RET_TRACE (or, with notify,
// SECCOMP_RET_USER_NOTIF), the x32 ABI is refused, everything else is allowed.
func seccompProgram(notify bool) ([]unix.SockFilter, error) {
	native, foreign := uint32(unix.SECCOMP_RET_TRACE|traceNative), uint32(unix.SECCOMP_RET_TRACE|traceForeign)
	if notify {
		native, foreign = unix.SECCOMP_RET_USER_NOTIF, unix.SECCOMP_RET_USER_NOTIF
	}
	raw, err := bpf.Assemble(seccompInstructions(native, foreign))
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// installFilter installs the filter on the calling thread. Without
// CAP_SYS_ADMIN the kernel demands no_new_privs first; with it, setuid
// programs in the app keep working.
// With flags SECCOMP_FILTER_FLAG_NEW_LISTENER it returns the notification fd.
func installFilter(prog []unix.SockFilter, flags uintptr) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var fd uintptr
	set := func() unix.Errno {
		r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
		fd = r
		return e
	}
	e := set()
	if e == unix.EACCES {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return -1, fmt.Errorf("set no_new_privs: %w", err)
		}
		e = set()
	}
	if e != 0 {
		return -1, fmt.Errorf("install seccomp filter: %w", e)
	}
	return int(fd), nil
}
