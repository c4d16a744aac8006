//go:build linux && (amd64 || arm64)

package supervise

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// interrupter refuses connects to deny, and before the answer sends the
// caller SIGUSR1 and waits until the signal took the caller out of its
// call: the refusal then finds no call waiting.
type interrupter struct {
	recorder
	deny netip.AddrPort
	t    *testing.T
}

func (h *interrupter) Connect(e ConnectEvent) Verdict {
	if e.Addr != h.deny {
		return Allow
	}
	if err := syscall.Kill(e.PID, syscall.SIGUSR1); err != nil {
		h.t.Errorf("signal the caller: %v", err)
		return Deny
	}
	// /proc/PID/syscall names the call a task waits in: another call
	// than connect (the wait for the script's next program, or a write)
	// shows that the signal took the caller out of its connect. "running"
	// tells nothing: woken by the signal, the task may not have left the
	// wait yet.
	connect := strconv.Itoa(unix.SYS_CONNECT)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(e.PID) + "/syscall")
		if err != nil {
			return Deny
		}
		if nr, _, _ := strings.Cut(strings.TrimSpace(string(b)), " "); nr != connect && nr != "running" && !strings.HasPrefix(nr, "-") {
			return Deny
		}
		time.Sleep(time.Millisecond) // polling a real condition, bounded by the deadline
	}
	h.t.Error("the caller still waits in connect 10 s after SIGUSR1")
	return Deny
}

// TestNotifyInterruptedRefusal: a refused connect whose caller a signal
// interrupts before the answer, and which the caller does not make again
// (bash's trap handlers run without SA_RESTART: connect fails with EINTR),
// is reported as Interrupted, once, and never as refused or as a process
// that ended.
func TestNotifyInterruptedRefusal(t *testing.T) {
	testenv.RequireRoot(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("bash is needed (its /dev/tcp connects from the shell itself)")
		}
		t.Skip("no bash")
	}
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h := &interrupter{deny: netip.MustParseAddrPort("192.0.2.1:80"), t: t}
	// After the connect the script runs a program: its exec waits for the
	// supervisor, so the shell is alive (waiting for it) while the
	// supervisor looks at the refused call that vanished.
	script := `trap 'echo trapped' USR1; { : 3<>/dev/tcp/192.0.2.1/80; } 2>&1; echo "rc=$?"; /bin/true; exit 0`
	st, err := Run(Config{Path: bash, Argv: []string{"bash", "-c", script}, Env: []string{"PATH=/bin:/usr/bin"},
		Files: [3]*os.File{nil, out, out}, Handler: h, Mode: ModeUserNotify})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, _ := os.ReadFile(out.Name())
	if st.Code != 0 || !strings.Contains(string(b), "Interrupted system call") || !strings.Contains(string(b), "trapped") || !strings.Contains(string(b), "rc=1") {
		t.Fatalf("status %+v, output %q: want the connect interrupted (EINTR), the trap run and rc=1", st, b)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.outcomes) != 1 || h.outcomes[0].o != Interrupted {
		t.Fatalf("outcomes %+v (%v), want one Interrupted", h.outcomes, h.outcomes)
	}
}
