//go:build linux

package socket

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxCgroupFile bounds what is read of /proc/PID/cgroup (a few lines, one
// per hierarchy; paths are short).
const maxCgroupFile = 4 << 10

// peerGroup names the group the process at the other end of c is counted
// in: its container, read once at accept from the connecting process's
// credentials (SO_PEERCRED). See groupOf.
func peerGroup(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "unknown peer"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unknown peer"
	}
	var cred *unix.Ucred
	credErr := errors.New("no descriptor")
	pidfd := -1
	_ = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil && cred.Pid > 0 {
			// Linux 6.5+: a pidfd of the very process that connected, so
			// that a PID reused between its exit and our read of /proc
			// is noticed (the kernel makes it O_CLOEXEC).
			if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
				pidfd = pfd
			}
		}
	})
	if credErr != nil {
		return "unknown peer"
	}
	if pidfd >= 0 {
		defer unix.Close(pidfd)
	}
	return groupOf(*cred, pidfd, "/proc")
}

// groupOf names the peer group of the process cred describes (proc is
// where /proc is mounted). Each container of a task has a cgroup of its
// own, so the group is the process's cgroup, as /proc/PID/cgroup names it
// (every hierarchy's line: on a cgroup v1 host the unified line is "0::/"
// for everyone). When that cannot be read, it is the process's PID
// namespace (each container of a task has its own unless the task shares
// one, and then the cgroup can be read), and when neither can (the
// process ended before it was read, or it is in a PID namespace the
// sidecar cannot see, where SO_PEERCRED gives PID 0) it is the user ID:
// peers that cannot be placed never share a group with ones that can.
//
// The read is made once, at accept, and only groups links: a PID is
// reused once its process ends, so with pidfd (SO_PEERPIDFD, Linux 6.5+;
// -1 without) the read counts only if the process was still alive after
// it. Without one a process that connects and ends at once may be counted
// in the group of whatever process takes its PID in the moment between.
func groupOf(cred unix.Ucred, pidfd int, proc string) string {
	if cred.Pid > 0 {
		dir := proc + "/" + strconv.Itoa(int(cred.Pid))
		if cg, err := readBounded(dir+"/cgroup", maxCgroupFile); err == nil && len(cg) > 0 && alive(pidfd) {
			return "cgroup " + strings.Join(strings.Fields(cg), " ")
		}
		if ns, err := os.Readlink(dir + "/ns/pid"); err == nil && alive(pidfd) {
			return "pid namespace " + ns
		}
	}
	return "uid " + strconv.FormatUint(uint64(cred.Uid), 10)
}

// alive reports whether the process of pidfd has not ended (true without one).
func alive(pidfd int) bool {
	if pidfd < 0 {
		return true
	}
	err := unix.PidfdSendSignal(pidfd, 0, nil, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// readBounded reads at most limit bytes of a file.
func readBounded(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	return string(b), err
}
