//go:build linux && (amd64 || arm64)

package supervise

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// chrootWaitArg makes the test binary chroot into its argument, say so on
// stdout and wait until its stdin closes: a process whose root is not ours.
const chrootWaitArg = "__taskguard_chroot_wait"

func init() {
	if len(os.Args) != 3 || os.Args[1] != chrootWaitArg {
		return
	}
	if err := unix.Chroot(os.Args[2]); err != nil {
		os.Exit(3)
	}
	os.Stdout.WriteString("in\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// TestResolveExecRoots resolves exec paths the way the kernel will for a
// process in our root (looked up from the root directory opened once) and
// for one in another root (looked up from its /proc/PID/root): an absolute
// link inside the other root stays inside it, and a file only there is not
// found in ours.
func TestResolveExecRoots(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/tg-only-here"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for l, target := range map[string]string{"bin": "usr/bin", "usr/bin/tg-alias": "/usr/bin/tg-only-here"} {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(mustExe(t), chrootWaitArg, root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "in\n" {
		t.Fatalf("the chrooted child said %q, %v", line, err)
	}

	got, ctime, err := resolveExec(cmd.Process.Pid, "/bin/tg-alias")
	if err != nil || got != "/usr/bin/tg-only-here" {
		t.Errorf("resolveExec(chrooted child, /bin/tg-alias) = %q, %v; want /usr/bin/tg-only-here", got, err)
	}
	if kernelResolves() && ctime.IsZero() {
		t.Error("resolveExec(chrooted child) gave no ctime of the file it found")
	}
	if got, _, err := resolveExec(os.Getpid(), "/bin/tg-alias"); err == nil {
		t.Errorf("resolveExec(this process, /bin/tg-alias) = %q: found in our root, where it does not exist", got)
	}
	exe := mustExe(t)
	if got, ctime, err := resolveExec(os.Getpid(), exe); err != nil || got != exe || (kernelResolves() && ctime.IsZero()) {
		t.Errorf("resolveExec(this process, %s) = %q, %v, %v; want it unchanged, with a ctime", exe, got, ctime, err)
	}
}

// kernelResolves reports whether openat2 exists here (else every path
// takes the walk, which reads no ctime).
func kernelResolves() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err == nil {
		unix.Close(fd)
	}
	return err != unix.ENOSYS
}
