package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// TestIOURingHelper is the app of TestIOURingRefused: it asks for a ring
// and prints what the kernel answered.
func TestIOURingHelper(t *testing.T) {
	if os.Getenv("TG_IOURING_HELPER") != "1" {
		t.Skip("helper process of TestIOURingRefused")
	}
	var params [120]byte // struct io_uring_params
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params[0])), 0)
	if e != 0 {
		fmt.Printf("io_uring_setup: %s\n", e.Error())
		return
	}
	unix.Close(int(fd))
	fmt.Println("io_uring_setup: ring")
}

// TestIOURingRefused: an app under either mechanism gets ENOSYS for a ring,
// whose connects and sends no filter would see; unsupervised, this kernel
// gives one, so the refusal is the filter's.
func TestIOURingRefused(t *testing.T) {
	testenv.RequireRoot(t)
	if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("io_uring is disabled on this kernel (kernel.io_uring_disabled=%s): the test cannot show the filter refuses it", strings.TrimSpace(string(b)))
	}
	env := []string{"TG_IOURING_HELPER=1"}
	args := []string{"helper", "-test.run=^TestIOURingHelper$", "-test.count=1", "-test.v"}
	native := exec.Command(os.Args[0], args[1:]...)
	native.Env = env
	out, err := native.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "io_uring_setup: ring") {
		t.Fatalf("unsupervised, io_uring_setup gave no ring: %v\n%s", err, out)
	}
	want := "io_uring_setup: " + unix.ENOSYS.Error()
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := Run(Config{Path: os.Args[0], Argv: args, Env: env, Files: [3]*os.File{nil, f, f}, Handler: &recorder{}, Mode: m})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(f.Name())
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if st.Code != 0 || !strings.Contains(string(b), want) {
				t.Errorf("status %+v, output:\n%s\nwant %q", st, b, want)
			}
		})
	}
}
