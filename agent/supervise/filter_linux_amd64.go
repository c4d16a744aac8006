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

// i386 numbers of the supervised calls (int 0x80 from a 64-bit process).
var i386Supervised = []uint32{11 /* execve */, 358 /* execveat */, 102 /* socketcall */, 361 /* bind */, 362 /* connect */, 363 /* listen */, 345 /* sendmmsg */, 369 /* sendto */, 370 /* sendmsg */}

var nativeSupervised = []uint32{
	unix.SYS_EXECVE, unix.SYS_EXECVEAT, unix.SYS_CONNECT, unix.SYS_SENDTO,
	unix.SYS_SENDMSG, unix.SYS_SENDMMSG, unix.SYS_BIND, unix.SYS_LISTEN,
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

// seccompInstructions returns the filter; native and foreign are the
// actions for supervised calls of the native and the i386 ABI.
func seccompInstructions(native, foreign uint32) []bpf.Instruction {
	const (
		offNr   = 0
		offArch = 4
		x32Bit  = 0x40000000
	)
	ret := func(v uint32) bpf.Instruction { return bpf.RetConstant{Val: v} }
	var p []bpf.Instruction
	p = append(p, bpf.LoadAbsolute{Off: offArch, Size: 4})
	p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_X86_64, SkipTrue: 1})
	// Not native: the i386 block follows after the native block; jump there.
	nativeLen := 2 + 2*len(nativeSupervised) + 1 // load nr, x32 test, pairs, allow (errno follows)
	p = append(p, bpf.Jump{Skip: uint32(nativeLen + 1)})
	// Native block.
	p = append(p, bpf.LoadAbsolute{Off: offNr, Size: 4})
	p = append(p, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: x32Bit, SkipTrue: uint8(2*len(nativeSupervised) + 1)})
	for _, nr := range nativeSupervised {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1})
		p = append(p, ret(native))
	}
	p = append(p, ret(unix.SECCOMP_RET_ALLOW))
	p = append(p, ret(unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM)))
	// i386 block (only reached for a foreign arch).
	p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_I386, SkipFalse: uint8(1 + 2*len(i386Supervised))})
	p = append(p, bpf.LoadAbsolute{Off: offNr, Size: 4})
	for _, nr := range i386Supervised {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1})
		p = append(p, ret(foreign))
	}
	p = append(p, ret(unix.SECCOMP_RET_ALLOW))
	return p
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
