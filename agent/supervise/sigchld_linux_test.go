//go:build linux && (amd64 || arm64)

package supervise

import (
	"os"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

func sigchldFlags(t *testing.T) uint64 {
	t.Helper()
	var cur kernelSigaction
	if e := sigchldAction(nil, &cur); e != 0 {
		t.Fatalf("read the SIGCHLD action: %v", e)
	}
	return cur.flags
}

// TestQuietChildStops checks that SA_NOCLDSTOP is on while a ptrace
// supervisor runs, stays on until the last of overlapping users ends, and
// is off again afterwards, with the rest of the action (Go's handler) kept.
func TestQuietChildStops(t *testing.T) {
	before := sigchldFlags(t)
	if before&saNoCldStop != 0 {
		t.Fatalf("SA_NOCLDSTOP already set before any supervisor ran (flags %#x)", before)
	}
	r1 := quietChildStops()
	if f := sigchldFlags(t); f != before|saNoCldStop {
		t.Fatalf("flags while supervising %#x, want %#x", f, before|saNoCldStop)
	}
	r2 := quietChildStops()
	r1()
	if f := sigchldFlags(t); f&saNoCldStop == 0 {
		t.Fatalf("flag taken off while another supervisor runs (flags %#x)", f)
	}
	r2()
	if f := sigchldFlags(t); f != before {
		t.Fatalf("flags after the last supervisor %#x, want %#x", f, before)
	}
}

// TestPtraceRunRestoresSigchld runs a traced child to its end: its exit is
// seen (a child's exit still signals and wakes the parent under
// SA_NOCLDSTOP) and the SIGCHLD action is as it was.
func TestPtraceRunRestoresSigchld(t *testing.T) {
	testenv.RequireRoot(t)
	before := sigchldFlags(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	st, err := Run(Config{Path: self, Argv: []string{self, benchLoopArg, "3"}, Handler: allowAll{}, Mode: ModePtrace})
	if err != nil || st.Code != 0 {
		t.Fatalf("run: %v, status %+v", err, st)
	}
	if st.Stops.Calls < 3 {
		t.Errorf("%d supervised calls for 3 launches", st.Stops.Calls)
	}
	if f := sigchldFlags(t); f != before {
		t.Fatalf("SIGCHLD flags after Run %#x, want %#x", f, before)
	}
}
