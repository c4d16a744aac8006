// Command vmcheck is the /init of a tiny virtual machine that checks
// syscall supervision on a real kernel of another architecture (arm64 under
// qemu-system-aarch64, where qemu-user cannot run ptrace or seccomp). It
// supervises itself under both mechanisms: a denied exec and a denied
// connect must fail with EPERM, an allowed exec must run, an io_uring ring
// (which the kernel gives it unsupervised) must be refused with ENOSYS, and
// the handler must hear "refused" for each denial. It prints one PASS or FAIL line and
// powers the machine off. scripts/arm64-vm-check.sh builds and boots it.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/agent/supervise"
)

type handler struct {
	mu       sync.Mutex
	outcomes []string
	// killOnDeny kills the caller before answering Deny: the refusal then
	// fails for real (the tracee is gone mid-stop).
	killOnDeny bool
}

func (h *handler) Exec(e supervise.ExecEvent) supervise.Verdict {
	if a := e.Args(); len(a) > 1 && a[1] == "denied" {
		if h.killOnDeny {
			_ = unix.Kill(e.PID, unix.SIGKILL)
		}
		return supervise.Deny
	}
	return supervise.Allow
}

func (h *handler) Connect(e supervise.ConnectEvent) supervise.Verdict {
	if e.Addr.Port() == 9 {
		return supervise.Deny
	}
	return supervise.Allow
}

func (h *handler) DNS(supervise.DNSEvent) supervise.Verdict       { return supervise.Allow }
func (h *handler) Listen(supervise.ListenEvent) supervise.Verdict { return supervise.Allow }
func (h *handler) Foreign(int, int) supervise.Verdict             { return supervise.Allow }

func (h *handler) Enforced(pid int, o supervise.Outcome, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.outcomes = append(h.outcomes, fmt.Sprintf("%v(%v)", o, err))
}

// app is the supervised program.
func app() int {
	bad := 0
	self, _ := os.Executable()
	err := unix.Exec(self, []string{self, "denied"}, nil)
	fmt.Printf("app: denied exec: %v\n", err)
	if !errors.Is(err, unix.EPERM) {
		bad++
	}
	out, err := exec.Command(self, "allowed").CombinedOutput()
	fmt.Printf("app: allowed exec: %q %v\n", strings.TrimSpace(string(out)), err)
	if err != nil || !strings.Contains(string(out), "allowed ran") {
		bad++
	}
	for _, port := range []int{9, 10} {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			fmt.Printf("app: socket: %v\n", err)
			return 1
		}
		err = unix.Connect(s, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
		unix.Close(s)
		fmt.Printf("app: connect to port %d: %v\n", port, err)
		if (port == 9) != errors.Is(err, unix.EPERM) {
			bad++
		}
	}
	// A ring would run connects no filter sees: the filter refuses it.
	if e := ioURingSetup(); e != unix.ENOSYS {
		fmt.Printf("app: io_uring_setup: %v, want ENOSYS\n", e)
		bad++
	} else {
		fmt.Printf("app: io_uring_setup: %v\n", e)
	}
	return bad
}

// ioURingSetup asks for a small ring, closes it, and returns the error.
func ioURingSetup() unix.Errno {
	var params [120]byte // struct io_uring_params
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params[0])), 0)
	if e == 0 {
		unix.Close(int(fd))
	}
	return e
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "app":
			os.Exit(app())
		case "allowed":
			fmt.Println("allowed ran")
			return
		case "denied":
			fmt.Println("DENIED PROGRAM RAN")
			return
		}
	}
	isInit := os.Getpid() == 1 // only the machine's init mounts and powers off
	if isInit {
		_ = unix.Mount("proc", "/proc", "proc", 0, "")
		_ = unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	}
	fmt.Printf("vmcheck on %s/%s\n", runtime.GOOS, runtime.GOARCH)
	// Unsupervised, the kernel gives a ring: the refusal under supervision
	// is the filter's.
	native := ioURingSetup()
	if native == 0 {
		fmt.Println("native io_uring_setup: a ring")
	} else {
		fmt.Printf("native io_uring_setup: %v (the kernel gives no ring: the check below shows nothing)\n", native)
	}
	pass := native == 0
	self, _ := os.Executable()
	for _, m := range []supervise.Mode{supervise.ModePtrace, supervise.ModeUserNotify} {
		h := &handler{}
		st, err := supervise.Run(supervise.Config{Path: self, Argv: []string{self, "app"},
			Files: [3]*os.File{nil, os.Stdout, os.Stdout}, Handler: h, Mode: m})
		ok := err == nil && st.ExitCode() == 0 && len(h.outcomes) == 2 &&
			h.outcomes[0] == "refused(<nil>)" && h.outcomes[1] == "refused(<nil>)"
		fmt.Printf("mode %v: status %+v err %v outcomes %v ok=%v\n", m, st, err, h.outcomes, ok)
		pass = pass && ok
	}
	// A refusal that fails for real: the caller dies in its stop. It must
	// be reported as gone, never as refused, and the program never runs.
	h := &handler{killOnDeny: true}
	st, err := supervise.Run(supervise.Config{Path: self, Argv: []string{self, "app"},
		Files: [3]*os.File{nil, os.Stdout, os.Stdout}, Handler: h, Mode: supervise.ModePtrace})
	ok := err == nil && st.Signal == unix.SIGKILL && len(h.outcomes) == 1 && strings.HasPrefix(h.outcomes[0], "gone(")
	fmt.Printf("ptrace, caller killed mid-stop: status %+v err %v outcomes %v ok=%v\n", st, err, h.outcomes, ok)
	pass = pass && ok
	if pass {
		fmt.Println("VMCHECK PASS")
	} else {
		fmt.Println("VMCHECK FAIL")
	}
	if !isInit {
		if !pass {
			os.Exit(1)
		}
		return
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
