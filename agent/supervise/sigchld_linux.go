//go:build linux && (amd64 || arm64)

package supervise

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64
// (both have sa_restorer; the mask is one 64-bit word).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// saNoCldStop is SA_NOCLDSTOP of asm/signal.h (1 on amd64 and arm64).
const saNoCldStop = 1

// quietStops holds the SIGCHLD action's SA_NOCLDSTOP flag while a ptrace
// supervisor runs. Without it the kernel sends the tracer a SIGCHLD at every
// ptrace stop of a tracee (do_notify_parent_cldstop), besides waking its
// wait4: a signal frame, the Go runtime's handler and a sigreturn per
// stop, for a signal nobody here listens to. With it the wake-up of wait4
// stays (the kernel wakes the waiting parent either way) and a child's
// exit still sends SIGCHLD. Counted, so that concurrent Runs restore the
// flag when the last one ends.
var quietStops struct {
	sync.Mutex
	users int
	set   bool // the flag was added by us (restore it at the end)
}

func sigchldAction(act, old *kernelSigaction) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), unsafe.Sizeof(act.mask), 0, 0)
	return e
}

// quietChildStops adds SA_NOCLDSTOP to SIGCHLD's action; the returned
// function takes it off again when no other Run needs it. Failures leave
// the action as it was: the flag only saves work.
func quietChildStops() (restore func()) {
	quietStops.Lock()
	defer quietStops.Unlock()
	quietStops.users++
	if quietStops.users == 1 {
		var cur kernelSigaction
		if sigchldAction(nil, &cur) == 0 && cur.flags&saNoCldStop == 0 {
			cur.flags |= saNoCldStop
			quietStops.set = sigchldAction(&cur, nil) == 0
		}
	}
	return func() {
		quietStops.Lock()
		defer quietStops.Unlock()
		if quietStops.users--; quietStops.users > 0 || !quietStops.set {
			return
		}
		quietStops.set = false
		var cur kernelSigaction
		if sigchldAction(nil, &cur) == 0 && cur.flags&saNoCldStop != 0 {
			cur.flags &^= saNoCldStop
			_ = sigchldAction(&cur, nil)
		}
	}
}
