package launcher

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/inventory"
	"github.com/taskguard/taskguard/agent/sidecar"
	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

const testDpkgStatus = `Package: openssl
Status: install ok installed
Version: 3.0.11-1~deb12u2
Architecture: amd64

Package: openssh-server
Status: install ok installed
Source: openssh
Version: 1:9.2p1-2+deb12u2
Architecture: amd64
`

func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInventoryReachesConsole: a launcher with a real sidecar inventories
// its (generated) root filesystem while the app runs, and the console's
// store holds the packages, OS and findings labelled with the container's
// identity.
func TestInventoryReachesConsole(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status": testDpkgStatus,
		"usr/sbin/sshd":       "elf",
		"var/lib/taskguard/node_modules/defender-own/package.json": `{"name":"defender-own","version":"1.0.0"}`,
	})
	cons := consoletest.Start(t)
	cons.SetPolicy(&policy.Policy{Images: []policy.ImageRule{{
		Name: "shop", Scope: policy.Scope{Tasks: []string{"shop"}},
		Compliance: policy.ComplianceRule{Custom: []policy.CustomCheck{
			{ID: "ACME-1", Title: "no sshd", Severity: "HIGH", FileAbsent: "/usr/sbin/ssh*"},
		}},
	}}})
	token := cons.AgentToken("shop")
	sock := filepath.Join(t.TempDir(), "d.sock")
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	sidecarDone := make(chan error)
	go func() {
		sidecarDone <- sidecar.Run(ctx, sidecar.Options{
			SocketPath: sock, StateDir: t.TempDir(), PolicyWait: time.Second, TaskFamily: "shop", Ready: ready,
			Console: &sidecar.Console{BaseURL: cons.URL, Token: token, HTTP: cons.HTTP},
		})
	}()
	defer func() {
		cancel()
		if err := <-sidecarDone; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	}()
	<-ready
	stopFile := filepath.Join(t.TempDir(), "stop")
	id := policy.Identity{TaskFamily: "shop", Container: "web", Image: "registry.example/shop/web:1.4"}
	appDone := make(chan error)
	go func() {
		_, err := Run(ctx, []string{"/bin/sh", "-c", "while [ ! -e " + stopFile + " ]; do sleep 0.05; done"}, os.Environ(), Options{
			Identity: id, TaskID: "task-1", SocketPath: sock, PolicyWait: 5 * time.Second,
			Inventory: &inventory.Schedule{
				Options:  inventory.Options{Root: root, SkipDirs: inventory.SkipDirsFor(root, filepath.Join(root, "var/lib/taskguard")), UID: 0},
				Identity: id, TaskID: "task-1", Delay: -1, Interval: time.Hour,
			},
			Log: slog.New(slog.DiscardHandler),
		})
		appDone <- err
	}()
	got := cons.WaitInventories(30*time.Second, "shop", func(i []api.Inventory) bool { return len(i) >= 1 })
	if err := os.WriteFile(stopFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-appDone; err != nil {
		t.Fatalf("launcher: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("console holds %d inventories, want 1", len(got))
	}
	inv := got[0]
	if inv.TaskFamily != "shop" || inv.TaskID != "task-1" || inv.Container != "web" || inv.Image != id.Image {
		t.Errorf("identity = %s/%s/%s/%s", inv.TaskFamily, inv.TaskID, inv.Container, inv.Image)
	}
	var names []string
	for _, p := range inv.Packages {
		names = append(names, p.Name+"@"+p.Version)
	}
	if want := []string{"openssh-server@1:9.2p1-2+deb12u2", "openssl@3.0.11-1~deb12u2"}; !slices.Equal(names, want) {
		t.Errorf("packages = %v, want %v", names, want)
	}
	if inv.OS == nil || inv.OS.Family != "debian" {
		t.Errorf("os = %+v", inv.OS)
	}
	var checks []string
	for _, f := range inv.Compliance {
		checks = append(checks, f.CheckID)
	}
	if !slices.Contains(checks, "TG-IMG-009") || !slices.Contains(checks, "TG-IMG-001") || !slices.Contains(checks, "ACME-1") {
		t.Errorf("checks = %v, want sshd, root and the image rule's custom ACME-1", checks)
	}
}

// benchRoot is TASKGUARD_BENCH_TREE (made by bench/inventory/mktree), or a
// tree of files files generated for the run.
func benchRoot(b *testing.B, files int) string {
	if dir := os.Getenv("TASKGUARD_BENCH_TREE"); dir != "" {
		return dir
	}
	root := b.TempDir()
	cmd := exec.Command("go", "run", "./bench/inventory/mktree", root, strconv.Itoa(files))
	cmd.Dir = testenv.RepoRoot(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mktree: %v\n%s", err, out)
	}
	return root
}

// BenchmarkAppStartInventory measures the app's start time (a shell that
// runs 40 programs and exits) under the launcher with a sidecar, with the
// inventory off and on. "On" starts the scan at once over a tree of
// TASKGUARD_BENCH_FILES files (default 100000) or TASKGUARD_BENCH_TREE, the worst case: by default
// the scan waits 30 s. Rounds interleave; the best of each counts, since
// the machine is shared (the medians are reported too). The metric
// best-on/off is the ratio (goal: at most 1.05).
func BenchmarkAppStartInventory(b *testing.B) {
	files := 100000
	if v, err := strconv.Atoi(os.Getenv("TASKGUARD_BENCH_FILES")); err == nil && v > 0 {
		files = v
	}
	root := benchRoot(b, files)
	srv := socket.NewServer(func(api.Audit) {}, slog.New(slog.DiscardHandler))
	srv.OnInventory(func(api.Inventory) {})
	srv.SetPolicy(&policy.Policy{Revision: 1})
	sock := filepath.Join(b.TempDir(), "d.sock")
	l, err := socket.Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, l) }()
	app := []string{"/bin/sh", "-c", "i=0; while [ $i -lt 40 ]; do /bin/true; i=$((i+1)); done"}
	run := func(sched *inventory.Schedule) time.Duration {
		start := time.Now()
		st, err := Run(ctx, app, os.Environ(), Options{
			Identity: policy.Identity{Container: "bench"}, SocketPath: sock, Inventory: sched,
		})
		d := time.Since(start)
		if err != nil || st.ExitCode() != 0 {
			b.Fatalf("launch: %v, status %+v", err, st)
		}
		return d
	}
	on := &inventory.Schedule{Options: inventory.Options{Root: root}, Delay: -1, Interval: time.Hour}
	run(nil) // warm up
	var offs, ons []time.Duration
	b.ResetTimer()
	for b.Loop() {
		offs = append(offs, run(nil))
		ons = append(ons, run(on))
	}
	b.StopTimer()
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	off, onm := median(offs), median(ons)
	// median sorted both: index 0 is the fastest round
	b.ReportMetric(float64(offs[0].Microseconds()), "best-off-µs")
	b.ReportMetric(float64(ons[0].Microseconds()), "best-on-µs")
	b.ReportMetric(float64(ons[0])/float64(offs[0]), "best-on/off")
	b.ReportMetric(float64(onm)/float64(off), "median-on/off")
	b.Logf("tree=%s rounds=%d app start best off=%v on=%v ratio=%.3f; median off=%v on=%v ratio=%.3f",
		root, len(offs), offs[0], ons[0], float64(ons[0])/float64(offs[0]), off, onm, float64(onm)/float64(off))
}
