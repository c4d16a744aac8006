//go:build linux && (amd64 || arm64)

package supervise

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// struct seccomp_notif_resp of linux/seccomp.h.
type seccompNotif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	NR    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// startNotify starts the child with a user-notification filter and returns
// its pid and a copy of its listener fd.
func startNotify(cfg Config) (int, int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, -1, fmt.Errorf("find own executable for the supervised child: %w", err)
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return 0, -1, fmt.Errorf("sync pipe: %w", err)
	}
	defer syncR.Close()
	defer syncW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return 0, -1, fmt.Errorf("report pipe: %w", err)
	}
	defer repR.Close()
	fs, err := files(cfg)
	if err != nil {
		repW.Close()
		return 0, -1, err
	}
	argv := append([]string{self, stubArgNotify, cfg.Path}, cfg.Argv...)
	p, err := os.StartProcess(self, argv, &os.ProcAttr{Env: cfg.Env, Files: append(fs, syncR, repW)})
	repW.Close()
	if err != nil {
		return 0, -1, fmt.Errorf("start supervised child: %w", err)
	}
	fail := func(err error) (int, int, error) {
		_ = p.Kill()
		var ws unix.WaitStatus
		_, _ = unix.Wait4(p.Pid, &ws, 0, nil)
		return 0, -1, err
	}
	buf := make([]byte, 16)
	n, _ := repR.Read(buf)
	remote, err := strconv.Atoi(string(buf[:n]))
	if err != nil {
		return fail(errors.New("seccomp user notification is not available here (the child reported no listener)"))
	}
	pidfd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return fail(fmt.Errorf("pidfd_open: %w", err))
	}
	defer unix.Close(pidfd)
	listener, err := unix.PidfdGetfd(pidfd, remote, 0)
	if err != nil {
		return fail(fmt.Errorf("copy the seccomp listener: %w", err))
	}
	unix.CloseOnExec(listener)
	if _, err := syncW.Write([]byte{1}); err != nil {
		unix.Close(listener)
		return fail(fmt.Errorf("release supervised child: %w", err))
	}
	return p.Pid, listener, nil
}

func notifyIoctl(fd int, req uintptr, arg unsafe.Pointer) unix.Errno {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	return e
}

// notifyLoop answers the child tree's notifications until done is closed or
// every task holding the filter has exited. The kernel runs allowed calls
// itself (SECCOMP_USER_NOTIF_FLAG_CONTINUE) and fails denied ones with EPERM.
func (t *tracer) notifyLoop(fd int, done <-chan struct{}) {
	defer unix.Close(fd)
	for {
		select {
		case <-done:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 200)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil || pfd[0].Revents&unix.POLLIN == 0 {
			return // POLLHUP: no task holds the filter any more
		}
		var req seccompNotif
		if e := notifyIoctl(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&req)); e != 0 {
			if e == unix.EINTR || e == unix.ENOENT {
				continue
			}
			return
		}
		t.notified.Add(1)
		v := Allow
		if req.Arch == nativeArch {
			v = t.decide(int(req.PID), int(req.NR), req.Args)
		} else {
			v = t.h.Foreign(int(req.PID), int(req.NR))
		}
		// The memory read above belongs to this very call only if the
		// notification is still pending (the task did not die meanwhile).
		if e := notifyIoctl(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&req.ID)); e != 0 {
			if v == Deny {
				t.h.Enforced(int(req.PID), Gone, fmt.Errorf("the call is no longer waiting: %w", e))
			}
			continue
		}
		resp := seccompNotifResp{ID: req.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
		if v == Deny {
			resp.Flags, resp.Error = 0, -int32(unix.EPERM)
		}
		e := sendNotif(fd, &resp)
		if v != Deny {
			continue
		}
		if e != 0 {
			err := fmt.Errorf("answer the notification with EPERM: %w", e)
			t.h.Enforced(int(req.PID), killNotified(fd, req.ID, int(req.PID)), err)
			continue
		}
		t.h.Enforced(int(req.PID), Refused, nil)
	}
}

// sendNotif answers a notification. Tests replace it to force the failure
// of a refusal; nothing else does.
var sendNotif = func(fd int, resp *seccompNotifResp) unix.Errno {
	return notifyIoctl(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(resp))
}

// killNotified kills the process of tid, which waits on notification id
// that could not be refused. The pidfd is opened before the notification is
// checked once more, so a recycled pid is never hit; a task killed while it
// waits never runs its call.
func killNotified(fd int, id uint64, tid int) Outcome {
	pidfd, err := unix.PidfdOpen(tgidOf(tid), 0)
	if err != nil {
		if err == unix.ESRCH {
			return Gone
		}
		return Unenforced
	}
	defer unix.Close(pidfd)
	if e := notifyIoctl(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)); e != 0 {
		return Gone // no longer waiting: the task died, or a signal interrupted the call
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
		return Unenforced
	}
	return Killed
}
