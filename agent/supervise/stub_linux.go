//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The markers of the re-executed child: argv is [self, marker, path, argv...].
const (
	stubArg       = "__taskguard_supervised_exec"
	stubArgNotify = "__taskguard_supervised_exec_notify"
	// stubNoSends, after either marker, leaves the send calls out of the
	// filter (Config.IgnoreSends).
	stubNoSends = "_nosends"
)

// stubMarker is the marker argument for cfg.
func stubMarker(notify bool, cfg Config) string {
	m := stubArg
	if notify {
		m = stubArgNotify
	}
	if cfg.IgnoreSends {
		m += stubNoSends
	}
	return m
}

// The child's pipes: syncFD carries the supervisor's go-ahead, reportFD
// (user notification only) the number of the child's listener fd.
const (
	syncFD   = 3
	reportFD = 4
)

func init() {
	if len(os.Args) < 4 {
		return
	}
	marker, noSends := strings.CutSuffix(os.Args[1], stubNoSends)
	if marker != stubArg && marker != stubArgNotify {
		return
	}
	// Keep the main goroutine on the main thread: the tracer seized this
	// thread, the filter goes on it and the exec must come from it.
	runtime.LockOSThread()
	err := stubExec(marker == stubArgNotify, !noSends, os.Args[2], os.Args[3:])
	fmt.Fprintf(os.Stderr, "taskguard-defender: %v\n", err)
	code := 126
	if os.IsNotExist(err) {
		code = 127
	}
	os.Exit(code)
}

// stubExec installs the seccomp filter once the supervisor is ready and
// execs the program. With ptrace it waits for the seize first; with user
// notification it reports its listener fd, which the supervisor copies with
// pidfd_getfd, and waits until the copy is made.
func stubExec(notify, sends bool, path string, argv []string) error {
	wait := func() error {
		var b [1]byte
		if n, err := unix.Read(syncFD, b[:]); n != 1 {
			return fmt.Errorf("wait for the supervisor: read %d bytes: %v", n, err)
		}
		return nil
	}
	prog, err := seccompProgramFor(notify, sends)
	if err != nil {
		return err
	}
	if !notify {
		if err := wait(); err != nil {
			return err
		}
		if _, _, err := installFilter(prog, 0); err != nil {
			return err
		}
	} else {
		fd, _, err := installFilter(prog, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)
		if err != nil {
			return err
		}
		if _, err := unix.Write(reportFD, []byte(strconv.Itoa(fd))); err != nil {
			return fmt.Errorf("report listener: %w", err)
		}
		if err := wait(); err != nil {
			return err
		}
		unix.Close(fd) // the app must never hold its own listener
		unix.Close(reportFD)
	}
	unix.Close(syncFD)
	if err := unix.Exec(path, argv, os.Environ()); err != nil {
		return &os.PathError{Op: "exec", Path: path, Err: err}
	}
	return nil
}
