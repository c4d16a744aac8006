package supervise

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// nativeArch is the seccomp_data arch of this build's system calls.
const nativeArch = unix.AUDIT_ARCH_AARCH64

// AArch32 (compat) numbers of the supervised calls; the EABI that arm64
// kernels run has no socketcall.
var armSupervised = []uint32{11 /* execve */, 387 /* execveat */, 282 /* bind */, 283 /* connect */, 284 /* listen */, 290 /* sendto */, 296 /* sendmsg */, 374 /* sendmmsg */}

// armSends are the AArch32 send calls (sendto, sendmsg, sendmmsg), which
// Config.IgnoreSends leaves out.
var armSends = []uint32{290, 296, 374}

// seccompInstructions returns the filter; native and foreign are the
// actions for supervised calls of the native (AArch64) and the AArch32 ABI.
func seccompInstructions(native, foreign uint32) []bpf.Instruction {
	return seccompInstructionsFor(native, foreign, true)
}

// seccompInstructionsFor is seccompInstructions, without the send calls
// unless sends.
func seccompInstructionsFor(native, foreign uint32, sends bool) []bpf.Instruction {
	nativeSupervised, armSupervised := nativeSupervised, armSupervised
	if !sends {
		nativeSupervised, armSupervised = withoutSends(nativeSupervised, nativeSends), withoutSends(armSupervised, armSends)
	}
	const (
		offNr   = 0
		offArch = 4
	)
	ret := func(v uint32) bpf.Instruction { return bpf.RetConstant{Val: v} }
	var p []bpf.Instruction
	p = append(p, bpf.LoadAbsolute{Off: offArch, Size: 4})
	p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nativeArch, SkipTrue: 1})
	// Not native: the AArch32 block follows after the native block.
	uring := refuseIOURing()
	nativeLen := 1 + 2*len(nativeSupervised) + len(uring) + 1 // load nr, pairs, io_uring, allow
	p = append(p, bpf.Jump{Skip: uint32(nativeLen)})
	p = append(p, bpf.LoadAbsolute{Off: offNr, Size: 4})
	for _, nr := range nativeSupervised {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1})
		p = append(p, ret(native))
	}
	p = append(p, uring...)
	p = append(p, ret(unix.SECCOMP_RET_ALLOW))
	p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_ARM, SkipFalse: uint8(1 + 2*len(armSupervised) + len(uring))})
	p = append(p, bpf.LoadAbsolute{Off: offNr, Size: 4})
	for _, nr := range armSupervised {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1})
		p = append(p, ret(foreign))
	}
	p = append(p, uring...)
	p = append(p, ret(unix.SECCOMP_RET_ALLOW))
	return p
}

// regSet reads (get) or writes a register set of a stopped tracee with
// PTRACE_GETREGSET / PTRACE_SETREGSET (arm64 has no PTRACE_GETREGS) and
// returns the size the kernel used.
func regSet(get bool, tid int, which uintptr, p unsafe.Pointer, size uintptr) (uintptr, error) {
	req := uintptr(unix.PTRACE_SETREGSET)
	if get {
		req = unix.PTRACE_GETREGSET
	}
	iov := unix.Iovec{Base: (*byte)(p), Len: uint64(size)}
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, req, uintptr(tid), which, uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
		return 0, e
	}
	return uintptr(iov.Len), nil
}

// compatRegs is the AArch32 view of NT_PRSTATUS: r0-r15, cpsr, orig_r0;
// r7 holds the system call number.
type compatRegs [18]uint32

// seccomp handles one PTRACE_EVENT_SECCOMP stop of tid.
func (t *tracer) seccomp(tid int) {
	var regs unix.PtraceRegs
	n, err := regSet(true, tid, unix.NT_PRSTATUS, unsafe.Pointer(&regs), unsafe.Sizeof(regs))
	if err != nil {
		// A supervised call that cannot be read is never let through.
		t.h.Enforced(tid, killTracee(tid, err), fmt.Errorf("read the registers of a supervised call: %w", err))
		return
	}
	if n != unsafe.Sizeof(regs) {
		// An AArch32 task: the kernel gave the compat view.
		t.foreign(tid, (*compatRegs)(unsafe.Pointer(&regs)))
		return
	}
	nr := int(regs.Regs[8])
	args := [6]uint64{regs.Regs[0], regs.Regs[1], regs.Regs[2], regs.Regs[3], regs.Regs[4], regs.Regs[5]}
	if t.decide(tid, nr, args) == Deny {
		t.refuse(tid, func() error { return deny(tid, &regs, unix.EPERM) })
	}
}

// setRegs writes a stopped tracee's general registers. Tests replace it to
// force the failure of a refusal; nothing else does.
var setRegs = func(tid int, regs *unix.PtraceRegs) error {
	_, err := regSet(false, tid, unix.NT_PRSTATUS, unsafe.Pointer(regs), unsafe.Sizeof(*regs))
	return err
}

// skipCall sets the number of the stopped call to -1 (NT_ARM_SYSTEM_CALL):
// the kernel then skips it and returns what x0 (r0) holds.
func skipCall(tid int) error {
	nr := int32(-1)
	if _, err := regSet(false, tid, unix.NT_ARM_SYSTEM_CALL, unsafe.Pointer(&nr), unsafe.Sizeof(nr)); err != nil {
		return fmt.Errorf("set the call number to skip the call: %w", err)
	}
	return nil
}

// deny skips the system call and makes it return -errno.
func deny(tid int, regs *unix.PtraceRegs, errno unix.Errno) error {
	if err := skipCall(tid); err != nil {
		return err
	}
	regs.Regs[0] = uint64(-int64(errno))
	if err := setRegs(tid, regs); err != nil {
		return fmt.Errorf("set the registers to refuse the call: %w", err)
	}
	return nil
}

// foreign handles a stop of an AArch32 system call.
func (t *tracer) foreign(tid int, regs *compatRegs) {
	t.forgetPeers()
	if t.h.Foreign(tid, int(regs[7])) != Deny {
		return
	}
	t.refuse(tid, func() error {
		if err := skipCall(tid); err != nil {
			return err
		}
		regs[0] = ^uint32(unix.EPERM) + 1 // -EPERM
		if _, err := regSet(false, tid, unix.NT_PRSTATUS, unsafe.Pointer(regs), unsafe.Sizeof(*regs)); err != nil {
			return fmt.Errorf("set the registers to refuse a 32-bit call: %w", err)
		}
		return nil
	})
}
