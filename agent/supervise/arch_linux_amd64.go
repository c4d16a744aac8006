package supervise

import (
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// nativeArch is the seccomp_data arch of this build's system calls.
const nativeArch = unix.AUDIT_ARCH_X86_64

// i386 numbers of the supervised calls (int 0x80 from a 64-bit process).
var i386Supervised = []uint32{11 /* execve */, 358 /* execveat */, 102 /* socketcall */, 361 /* bind */, 362 /* connect */, 363 /* listen */, 345 /* sendmmsg */, 369 /* sendto */, 370 /* sendmsg */}

// i386Sends are the i386 send calls (sendmmsg, sendto, sendmsg), which
// Config.IgnoreSends leaves out; socketcall stays.
var i386Sends = []uint32{345, 369, 370}

// seccompInstructions returns the filter; native and foreign are the
// actions for supervised calls of the native and the i386 ABI.
func seccompInstructions(native, foreign uint32) []bpf.Instruction {
	return seccompInstructionsFor(native, foreign, true)
}

// seccompInstructionsFor is seccompInstructions, without the send calls
// unless sends.
func seccompInstructionsFor(native, foreign uint32, sends bool) []bpf.Instruction {
	nativeSupervised, i386Supervised := nativeSupervised, i386Supervised
	if !sends {
		nativeSupervised, i386Supervised = withoutSends(nativeSupervised, nativeSends), withoutSends(i386Supervised, i386Sends)
	}
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
	uring := refuseIOURing()
	nativeLen := 2 + 2*len(nativeSupervised) + len(uring) + 1 // load nr, x32 test, pairs, io_uring, allow (errno follows)
	p = append(p, bpf.Jump{Skip: uint32(nativeLen + 1)})
	// Native block.
	p = append(p, bpf.LoadAbsolute{Off: offNr, Size: 4})
	p = append(p, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: x32Bit, SkipTrue: uint8(2*len(nativeSupervised) + len(uring) + 1)})
	for _, nr := range nativeSupervised {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1})
		p = append(p, ret(native))
	}
	p = append(p, uring...)
	p = append(p, ret(unix.SECCOMP_RET_ALLOW))
	p = append(p, ret(unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM)))
	// i386 block (only reached for a foreign arch).
	p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_I386, SkipFalse: uint8(1 + 2*len(i386Supervised) + len(uring))})
	p = append(p, bpf.LoadAbsolute{Off: offNr, Size: 4})
	for _, nr := range i386Supervised {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1})
		p = append(p, ret(foreign))
	}
	p = append(p, uring...)
	p = append(p, ret(unix.SECCOMP_RET_ALLOW))
	return p
}

// seccomp handles one PTRACE_EVENT_SECCOMP stop of tid.
func (t *tracer) seccomp(tid int) {
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &regs); err != nil {
		// A supervised call that cannot be read is never let through.
		t.h.Enforced(tid, killTracee(tid, err), fmt.Errorf("read the registers of a supervised call: %w", err))
		return
	}
	nr := int(regs.Orig_rax)
	// The native and i386 numbers the filter traces do not overlap, so the
	// number tells the ABI without a PTRACE_GETEVENTMSG round trip.
	if !slices.Contains(nativeSupervised, uint32(nr)) {
		t.foreign(tid)
		return
	}
	args := [6]uint64{regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9}
	if t.decide(tid, nr, args) == Deny {
		t.refuse(tid, func() error { return deny(tid, &regs, unix.EPERM) })
	}
}

// setRegs writes a stopped tracee's registers. Tests replace it to force
// the failure of a refusal; nothing else does.
var setRegs = unix.PtraceSetRegs

// deny skips the system call and makes it return -errno.
func deny(tid int, regs *unix.PtraceRegs, errno unix.Errno) error {
	regs.Orig_rax = ^uint64(0)
	regs.Rax = uint64(-int64(errno))
	if err := setRegs(tid, regs); err != nil {
		return fmt.Errorf("set the registers to refuse the call: %w", err)
	}
	return nil
}

// i386 user_regs_struct: 17 32-bit registers; orig_eax and eax by index.
const (
	i386Regs    = 17
	i386Eax     = 6
	i386OrigEax = 11
)

// foreign handles a stop of an i386 (int 0x80) system call. PTRACE_GETREGS
// gives the 64-bit view, which does not hold a compat call's number, so the
// registers are read and written with PTRACE_GETREGSET in the tracee's view.
func (t *tracer) foreign(tid int) {
	var regs [i386Regs]uint32
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&regs[0])), Len: uint64(unsafe.Sizeof(regs))}
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), uintptr(unix.NT_PRSTATUS), uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 || iov.Len != uint64(unsafe.Sizeof(regs)) {
		var err error = e
		if e == 0 {
			err = fmt.Errorf("register set of %d bytes, want %d", iov.Len, unsafe.Sizeof(regs))
		}
		t.h.Enforced(tid, killTracee(tid, err), fmt.Errorf("read the registers of a 32-bit supervised call: %w", err))
		return
	}
	t.forgetPeers()
	if t.h.Foreign(tid, int(regs[i386OrigEax])) != Deny {
		return
	}
	t.refuse(tid, func() error {
		regs[i386OrigEax] = ^uint32(0)
		regs[i386Eax] = ^uint32(unix.EPERM) + 1 // -EPERM
		if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(tid), uintptr(unix.NT_PRSTATUS), uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
			return fmt.Errorf("set the registers to refuse a 32-bit call: %w", e)
		}
		return nil
	})
}
