//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"slices"
	"sync"
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

// nativeSends are the send calls, which Config.IgnoreSends leaves out.
var nativeSends = []uint32{unix.SYS_SENDTO, unix.SYS_SENDMSG, unix.SYS_SENDMMSG}

// withoutSends is nrs without the numbers in sends.
func withoutSends(nrs, sends []uint32) []uint32 {
	return slices.DeleteFunc(slices.Clone(nrs), func(n uint32) bool { return slices.Contains(sends, n) })
}

// io_uring's calls have these numbers on every architecture (425-427 since
// Linux 5.1, in the range where the tables are unified).
const (
	nrIOURingSetup    = 425
	nrIOURingRegister = 427
)

// refuseIOURing returns the filter's check, with the call number loaded,
// that refuses io_uring_setup, io_uring_enter and io_uring_register with
// ENOSYS. A ring runs connect, bind, listen and sendmsg inside the kernel
// (IORING_OP_CONNECT, ...), where no seccomp filter sees them: an app with
// a ring would make network calls the policy never decided. ENOSYS is what
// a kernel without io_uring answers, so runtimes that can use a ring
// (libuv, liburing's users) fall back to plain system calls, as they do
// under Docker's and containerd's default profiles, which refuse it too.
func refuseIOURing() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: nrIOURingSetup, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: nrIOURingRegister, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
}

// seccompProgram builds the classic BPF filter: supervised calls of the
// native and the i386 ABI return SECCOMP_RET_TRACE (or, with notify,
// SECCOMP_RET_USER_NOTIF), the x32 ABI is refused, everything else is allowed.
func seccompProgram(notify bool) ([]unix.SockFilter, error) {
	return seccompProgramFor(notify, true)
}

// seccompProgramFor is seccompProgram, without the send calls unless sends.
func seccompProgramFor(notify, sends bool) ([]unix.SockFilter, error) {
	native, foreign := uint32(unix.SECCOMP_RET_TRACE|traceNative), uint32(unix.SECCOMP_RET_TRACE|traceForeign)
	if notify {
		native, foreign = unix.SECCOMP_RET_USER_NOTIF, unix.SECCOMP_RET_USER_NOTIF
	}
	raw, err := bpf.Assemble(seccompInstructionsFor(native, foreign, sends))
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// specAllow is SECCOMP_FILTER_FLAG_SPEC_ALLOW (Linux 4.17+).
//
// Without it, installing a seccomp filter makes the kernel force the
// Speculative Store Bypass mitigation (SSBD) on for the whole process, on
// kernels before 5.16 and on any kernel booted with
// spec_store_bypass_disable=seccomp. Fargate has run 4.14 and 5.10 kernels.
// SSBD slows every load after a store in all of the app's code, not only its
// system calls. The mitigation is there for a filter that sandboxes hostile
// code running in the same process; ours polices what the app asks the
// kernel for, and the app is the process, so there is no one in it to
// shield from it. The app keeps whatever mitigation the kernel and its own
// prctl(PR_SET_SPECULATION_CTRL) choose.
const specAllow = unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW

var specAllowOnce = sync.OnceValue(func() bool {
	// The kernel checks the flags before it reads the program: a NULL
	// program fails with EFAULT when the flags are known, EINVAL when not.
	// Nothing is installed either way.
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, specAllow, 0)
	return e == unix.EFAULT
})

// SpecAllowSupported reports whether this kernel takes
// SECCOMP_FILTER_FLAG_SPEC_ALLOW, which the filters are installed with.
// Without it (kernels before 4.17) installing the filter may force the
// Speculative Store Bypass mitigation on for the app (see specAllow).
func SpecAllowSupported() bool { return specAllowOnce() }

// installFilter installs the filter on the calling thread. Without
// CAP_SYS_ADMIN the kernel demands no_new_privs first; with it, setuid
// programs in the app keep working.
// With flags SECCOMP_FILTER_FLAG_NEW_LISTENER it returns the notification fd.
// The filter is installed with SECCOMP_FILTER_FLAG_SPEC_ALLOW (see
// specAllow), and without it where the kernel refuses the flag (EINVAL,
// before 4.17); spec tells which.
func installFilter(prog []unix.SockFilter, flags uintptr) (fd int, spec bool, err error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var r uintptr
	set := func(flags uintptr) unix.Errno {
		var e unix.Errno
		r, _, e = unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
		return e
	}
	try := func() unix.Errno {
		if e := set(flags | specAllow); e != unix.EINVAL {
			spec = true
			return e
		}
		spec = false
		return set(flags)
	}
	e := try()
	if e == unix.EACCES {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return -1, false, fmt.Errorf("set no_new_privs: %w", err)
		}
		e = try()
	}
	if e != 0 {
		return -1, false, fmt.Errorf("install seccomp filter: %w", e)
	}
	return int(r), spec, nil
}
