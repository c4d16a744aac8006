package inventory

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ioprio_set arguments (linux/ioprio.h).
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// lowerPriority gives the calling thread (locked by the caller) nice 19 and
// the idle I/O class. Both are allowed to unprivileged users.
func lowerPriority() error {
	tid := unix.Gettid()
	errNice := unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShift)
	var errIO error
	if errno != 0 {
		errIO = errno
	}
	return errors.Join(errNice, errIO)
}
