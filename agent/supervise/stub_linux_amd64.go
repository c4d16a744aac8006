package supervise

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// stubArg marks the re-executed child: argv is [self, stubArg, path, argv...].
const stubArg = "__taskguard_supervised_exec"

// syncFD is the pipe the tracer writes one byte to once it has seized the child.
const syncFD = 3

func init() {
	if len(os.Args) < 4 || os.Args[1] != stubArg {
		return
	}
	// Keep the main goroutine on the main thread: the tracer seized this
	// thread, the filter goes on it and the exec must come from it.
	runtime.LockOSThread()
	err := stubExec(os.Args[2], os.Args[3:])
	fmt.Fprintf(os.Stderr, "taskguard-defender: %v\n", err)
	code := 126
	if os.IsNotExist(err) {
		code = 127
	}
	os.Exit(code)
}

// stubExec waits for the tracer, installs the seccomp filter and execs the program.
func stubExec(path string, argv []string) error {
	var b [1]byte
	if n, err := unix.Read(syncFD, b[:]); n != 1 {
		return fmt.Errorf("wait for the tracer: read %d bytes: %v", n, err)
	}
	unix.Close(syncFD)
	prog, err := seccompProgram()
	if err != nil {
		return err
	}
	if err := installFilter(prog); err != nil {
		return err
	}
	if err := unix.Exec(path, argv, os.Environ()); err != nil {
		return &os.PathError{Op: "exec", Path: path, Err: err}
	}
	return nil
}
