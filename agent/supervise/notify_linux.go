//go:build linux && (amd64 || arm64)

package supervise

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
	fs, release, err := files(cfg)
	if err != nil {
		repW.Close()
		return 0, -1, err
	}
	defer release()
	argv := append([]string{self, stubMarker(true, cfg), cfg.Path}, cfg.Argv...)
	p, err := os.StartProcess(self, argv, &os.ProcAttr{Env: cfg.Env, Files: append(fs, syncR, repW)})
	repW.Close()
	if err != nil {
		return 0, -1, fmt.Errorf("start supervised child: %w", err)
	}
	defer p.Release() // its pidfd; the supervisor waits with wait4
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

// notifyLoop answers the child tree's notifications until stop (an eventfd)
// is signalled or every task holding the filter has exited. It blocks in
// poll on both, with no timeout: a notification wakes it at once and so does
// the stop. The kernel runs allowed calls itself
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE) and fails denied ones with EPERM.
// Notifications already waiting when the stop comes are answered before it
// returns; it closes fd, after which the kernel fails the filter's
// supervised calls with ENOSYS (none runs unchecked).
func (t *tracer) notifyLoop(fd, stop int) {
	defer unix.Close(fd)
	defer t.closeFDDirs()
	defer t.flushInterrupted()
	// The caller and this thread hand the CPU to each other directly: the
	// kernel wakes the supervisor on the caller's CPU and the caller on
	// ours (Linux 6.6+; older kernels refuse the flag, then wake-ups go
	// the usual way).
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
	var y yielder
	for {
		pfd[0].Revents, pfd[1].Revents = 0, 0
		if _, err := unix.Poll(pfd, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if pfd[1].Revents != 0 {
			t.drainNotifications(fd)
			return
		}
		if pfd[0].Revents&unix.POLLIN != 0 {
			if !t.answerOne(fd) {
				return
			}
			y.yield()
			continue
		}
		if pfd[0].Revents != 0 {
			return // POLLHUP: no task holds the filter any more
		}
	}
}

// maxDrain bounds the notifications answered after the stop: tasks that
// outlive the supervised child may keep making supervised calls.
const maxDrain = 256

// drainNotifications answers the notifications that are waiting now.
func (t *tracer) drainNotifications(fd int) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for range maxDrain {
		pfd[0].Revents = 0
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 || pfd[0].Revents&unix.POLLIN == 0 || !t.answerOne(fd) {
			return
		}
	}
}

// answerOne receives one notification and answers it. It returns false
// when the listener is unusable.
func (t *tracer) answerOne(fd int) bool {
	var req seccompNotif
	if e := notifyIoctl(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&req)); e != 0 {
		// EINTR: a signal; ENOENT: the caller died before we took it.
		return e == unix.EINTR || e == unix.ENOENT
	}
	t.notified.Add(1)
	call := notifiedCall{nr: req.NR, arch: req.Arch, args: req.Args}
	v := Allow
	if prev, ok := t.interrupted[req.PID]; ok && prev == call {
		// The restart of a refused call a signal interrupted: it was
		// decided and audited already, and its audit waits for this answer.
		delete(t.interrupted, req.PID)
		v = Deny
	} else {
		if ok {
			// The interrupted call was not restarted (EINTR to the caller).
			delete(t.interrupted, req.PID)
			t.h.Enforced(int(req.PID), Interrupted, nil)
		}
		if req.Arch == nativeArch {
			v = t.decide(int(req.PID), int(req.NR), req.Args)
		} else {
			t.forgetPeers()
			v = t.h.Foreign(int(req.PID), int(req.NR))
		}
	}
	if v != Deny {
		// Let the call run at once. No ID_VALID check first: if the
		// caller died meanwhile the answer fails with ENOENT, and an Allow
		// leaves nothing to undo or to report as enforced.
		resp := seccompNotifResp{ID: req.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
		_ = sendNotif(fd, &resp)
		return true
	}
	// The memory read above belongs to this very call only if the
	// notification is still pending (the task did not die meanwhile).
	if e := notifyIoctl(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&req.ID)); e != 0 {
		if waitsOn(int(req.PID)) && len(t.interrupted) < maxInterrupted {
			// A signal took the caller out of its wait (the call did not
			// run): the restarted call gets this verdict and the outcome.
			if t.interrupted == nil {
				t.interrupted = map[uint32]notifiedCall{}
			}
			t.interrupted[req.PID] = call
			return true
		}
		t.h.Enforced(int(req.PID), Gone, fmt.Errorf("the call is no longer waiting: %w", e))
		return true
	}
	resp := seccompNotifResp{ID: req.ID, Error: -int32(unix.EPERM)}
	e := sendNotif(fd, &resp)
	if e != 0 {
		err := fmt.Errorf("answer the notification with EPERM: %w", e)
		t.h.Enforced(int(req.PID), killNotified(fd, req.ID, int(req.PID)), err)
		return true
	}
	t.h.Enforced(int(req.PID), Refused, nil)
	return true
}

// notifiedCall is a supervised call as the notification shows it; a
// restarted call shows the same.
type notifiedCall struct {
	nr   int32
	arch uint32
	args [6]uint64
}

// maxInterrupted bounds the interrupted calls remembered.
const maxInterrupted = 1024

// flushInterrupted reports the interrupted calls that never came again
// (the supervisor stops): none of them ran.
func (t *tracer) flushInterrupted() {
	for pid := range t.interrupted {
		t.h.Enforced(int(pid), Interrupted, nil)
	}
	clear(t.interrupted)
}

// waitsOn reports whether task tid lives on and is not dying: a task whose
// notification vanished without an answer was then interrupted by a
// signal, and makes its call again unless the signal kills it.
func waitsOn(tid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X") {
				return false
			}
		case "SigPnd", "ShdPnd":
			// SIGKILL pending (bit 8 of the mask, signal 9): the task is dying.
			if m, err := strconv.ParseUint(v, 16, 64); err != nil || m&(1<<(unix.SIGKILL-1)) != 0 {
				return false
			}
		}
	}
	return true
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
