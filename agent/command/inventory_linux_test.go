//go:build linux && amd64

package command_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// chrootContainer mounts an overlay of a read-only root filesystem (so the
// cached debootstrap stays untouched) with /proc, the defender binary in
// its volume /var/lib/taskguard, and returns the merged root.
func chrootContainer(t *testing.T, lower, defender string) string {
	t.Helper()
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		testenv.Skip(t, "overlayfs unavailable: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	if err := unix.Mount("proc", filepath.Join(merged, "proc"), "proc", 0, ""); err != nil {
		t.Fatalf("mount proc: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(merged, "proc"), unix.MNT_DETACH) })
	vol := filepath.Join(merged, "var/lib/taskguard")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(defender)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "defender"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return merged
}

// TestInventoryOfDebootstrapContainer: the static defender runs as the
// entrypoint of a debootstrap'ed bookworm (chroot), with a real sidecar
// process and a real console. The console stores the container's inventory
// with exactly the packages and OS that the analyzers of `taskguard image
// scan --rootfs` find in the same root filesystem, the running-container
// findings (root, a secret in the environment), and nothing from /proc or
// the defender's volume. A launcher with TASKGUARD_INVENTORY=off sends
// nothing while a second launcher, started after it with the inventory on,
// gets its inventory stored.
func TestInventoryOfDebootstrapContainer(t *testing.T) {
	testenv.RequireRoot(t)
	lower := scantest.Debootstrap(t, "bookworm", nil)
	defender, _ := binaries(t)
	root := chrootContainer(t, lower, defender)

	cons := consoletest.Start(t)
	token := cons.AgentToken("shop")
	sock := filepath.Join(root, "var/lib/taskguard/defender.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sidecarOut bytes.Buffer
	sc := exec.CommandContext(ctx, defender, "sidecar", "--console", cons.URL, "--socket", sock,
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--task", "shop", "--log-level", "warn")
	sc.Env = append(os.Environ(), "TASKGUARD_AGENT_TOKEN="+token, "TASKGUARD_CONSOLE_CA_PEM="+cons.CAPEM())
	sc.Stdout, sc.Stderr = &sidecarOut, &sidecarOut
	sc.Cancel = func() error { return sc.Process.Signal(os.Interrupt) }
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = sc.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar's socket never appeared; output:\n%s", sidecarOut.String())
		}
	}

	launch := func(stop string, extraEnv ...string) *exec.Cmd {
		cmd := exec.Command("/var/lib/taskguard/defender", "entrypoint", "--", "/bin/sh", "-c",
			"while [ ! -e "+stop+" ]; do sleep 0.1; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		cmd.Env = append([]string{
			"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TASKGUARD_TASK=shop", "TASKGUARD_CONTAINER=web",
			"TASKGUARD_IMAGE=debian:bookworm", "TASKGUARD_TASK_ID=task-1", "TASKGUARD_INVENTORY_DELAY=0s",
			"DB_PASSWORD=hunter2-S3cret-value", "TASKGUARD_LOG_LEVEL=warn",
			// No throttle: the test measures what is sent, not how gently (on a
			// loaded CI machine a 10% budget at nice 19 takes minutes).
			"TASKGUARD_INVENTORY_CPU=1",
		}, extraEnv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("launcher output:\n%s\nsidecar output:\n%s", out.String(), sidecarOut.String())
			}
		})
		return cmd
	}
	stopApp := func(cmd *exec.Cmd, stop string) {
		if err := os.WriteFile(filepath.Join(root, stop), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("app under the launcher: %v", err)
		}
	}

	cmd := launch("/tmp/stop1")
	got := cons.WaitInventories(180*time.Second, "shop", func(i []api.Inventory) bool { return len(i) >= 1 })
	stopApp(cmd, "/tmp/stop1")
	if len(got) != 1 {
		t.Fatalf("console holds %d inventories, want 1", len(got))
	}
	inv := got[0]

	img, err := image.Open(ctx, lower, image.Options{Kind: image.KindRootFS})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	want, err := analyzer.Run(ctx, img, analyzer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var gotPkgs, wantPkgs []string
	for _, p := range inv.Packages {
		gotPkgs = append(gotPkgs, p.Type+":"+p.Name+"@"+p.Version+" src "+p.SrcName+"@"+p.SrcVersion)
		if strings.HasPrefix(p.Location.Path, "proc/") || strings.HasPrefix(p.Location.Path, "var/lib/taskguard/") {
			t.Errorf("package %s from a skipped directory %s", p.Name, p.Location.Path)
		}
	}
	for _, p := range want.Packages {
		wantPkgs = append(wantPkgs, p.Type+":"+p.Name+"@"+p.Version+" src "+p.SrcName+"@"+p.SrcVersion)
	}
	if len(wantPkgs) < 50 || !slices.Equal(gotPkgs, wantPkgs) {
		t.Errorf("inventory: %d packages, image scan of the rootfs: %d; they must be equal", len(gotPkgs), len(wantPkgs))
	}
	if inv.OS == nil || want.OS == nil || inv.OS.Family != want.OS.Family || inv.OS.Name != want.OS.Name {
		t.Errorf("os %+v, image scan %+v", inv.OS, want.OS)
	}
	if inv.TaskFamily != "shop" || inv.Container != "web" || inv.TaskID != "task-1" || inv.Image != "debian:bookworm" {
		t.Errorf("identity %s/%s/%s/%s", inv.TaskFamily, inv.TaskID, inv.Container, inv.Image)
	}
	var checks []string
	for _, f := range inv.Compliance {
		checks = append(checks, f.CheckID)
		if strings.Contains(f.Message, "hunter2") {
			t.Errorf("finding leaks the secret: %q", f.Message)
		}
	}
	for _, id := range []string{"TG-IMG-001", "TG-IMG-003", "TG-IMG-005"} {
		if !slices.Contains(checks, id) {
			t.Errorf("findings %v lack %s", checks, id)
		}
	}

	// The launcher with the inventory off runs at least as long as a second
	// one, started after it with the inventory on, needs to scan the same
	// tree and get its inventory stored: no fixed wait.
	taskOf := func(inv []api.Inventory) []string {
		var ids []string
		for _, i := range inv {
			ids = append(ids, i.TaskID)
		}
		slices.Sort(ids)
		return ids
	}
	off := launch("/tmp/stop-off", "TASKGUARD_INVENTORY=off", "TASKGUARD_TASK_ID=task-off")
	on := launch("/tmp/stop-on", "TASKGUARD_TASK_ID=task-on")
	cons.WaitInventories(180*time.Second, "shop", func(i []api.Inventory) bool { return slices.Contains(taskOf(i), "task-on") })
	stopApp(on, "/tmp/stop-on")
	stopApp(off, "/tmp/stop-off")
	if ids := taskOf(cons.Inventories("shop")); !slices.Equal(ids, []string{"task-1", "task-on"}) {
		t.Errorf("the console holds inventories of tasks %v, want task-1 and task-on: none from the launcher with TASKGUARD_INVENTORY=off", ids)
	}
}
