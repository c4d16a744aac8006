//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

// reexecArg makes the test binary the app of TestThreadExecsForgotten:
// argv [self, reexecArg, N]: it execs itself with N-1 from a thread that
// is not the main one, until N is 0.
const reexecArg = "__taskguard_test_reexec"

func init() {
	if len(os.Args) != 3 || os.Args[1] != reexecArg {
		return
	}
	n, _ := strconv.Atoi(os.Args[2])
	if n <= 0 {
		os.Exit(0)
	}
	failed := make(chan error)
	go func() {
		runtime.LockOSThread() // a thread of its own, never the main one
		failed <- syscall.Exec(os.Args[0], []string{os.Args[0], reexecArg, strconv.Itoa(n - 1)}, nil)
	}()
	fmt.Println("exec:", <-failed)
	os.Exit(1)
}

// TestThreadExecsForgotten: a thread that is not its process's leader and
// execs takes the leader's number, and the end of its own is never
// reported. 100 such execs in a row (a program that re-execs itself from a
// goroutine): what the tracer knows stays within twice the sweep floor
// (it kept an entry per exec for the life of the app).
func TestThreadExecsForgotten(t *testing.T) {
	const execs = 100
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	oldFloor := procsSweepFloor
	procsSweepFloor = 16
	var tr *tracer
	onTracer = func(x *tracer) { tr = x }
	defer func() { procsSweepFloor, onTracer = oldFloor, nil }()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	st, err := Run(Config{Path: self, Argv: []string{self, reexecArg, strconv.Itoa(execs)},
		Files: [3]*os.File{nil, out, out}, Handler: allowAll{}, Mode: ModePtrace})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out.Name()); st.Code != 0 {
		t.Fatalf("app status %+v: %s", st, b)
	}
	t.Logf("%d execs from a thread: %d threads known after the app ended, %d followed", execs, len(tr.procs), len(tr.pay.follows))
	if n := len(tr.procs); n > 2*procsSweepFloor {
		t.Errorf("the tracer knows %d threads after the app ended; want at most %d", n, 2*procsSweepFloor)
	}
}
