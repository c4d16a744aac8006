//go:build linux && (amd64 || arm64)

package supervise

import "golang.org/x/sys/unix"

// inject handles ptrace and process_vm_readv/writev: requests that reach
// into another process go to the InjectHandler. A process reading or
// writing its own memory, and every other ptrace request (TRACEME, requests
// on a tracee already attached), is let through.
func (t *tracer) inject(tid, nr int, args [6]uint64) Verdict {
	ih, ok := t.h.(InjectHandler)
	if !ok {
		return Allow
	}
	target := int(int32(args[1]))
	var call string
	switch nr {
	case unix.SYS_PTRACE:
		switch args[0] {
		case unix.PTRACE_ATTACH:
			call = "ptrace(PTRACE_ATTACH)"
		case unix.PTRACE_SEIZE:
			call = "ptrace(PTRACE_SEIZE)"
		default:
			return Allow
		}
	case unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV:
		target = int(int32(args[0]))
		if target == tid || target == tgidOf(tid) {
			return Allow
		}
		call = "process_vm_readv"
		if nr == unix.SYS_PROCESS_VM_WRITEV {
			call = "process_vm_writev"
		}
	default:
		return Allow
	}
	return ih.Inject(InjectEvent{Caller: t.caller(tid), Target: target, Call: call})
}
