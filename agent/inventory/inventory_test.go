package inventory

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/customcheck"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/scantest"
)

const dpkgStatus = `Package: base-files
Status: install ok installed
Version: 12.4+deb12u5
Architecture: amd64

Package: openssh-server
Status: install ok installed
Source: openssh
Version: 1:9.2p1-2+deb12u2
Architecture: amd64
`

// writeRootfs makes a small container filesystem with one instance of each
// thing the inventory reports, and decoys in the directories it must skip.
func writeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release":                                   "ID=debian\nVERSION_ID=\"12\"\n",
		"etc/debian_version":                               "12.5\n",
		"var/lib/dpkg/status":                              dpkgStatus,
		"usr/sbin/sshd":                                    "elf",
		"usr/bin/su":                                       "elf",
		"etc/ssl/private/app.key":                          "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----\n",
		"var/cache/apt/archives/curl_8.deb":                "deb",
		"app/node_modules/left-pad/package.json":           `{"name":"left-pad","version":"1.3.0"}`,
		"proc/1/root/node_modules/evil/package.json":       `{"name":"evil-proc","version":"1.0.0"}`,
		"dev/shm/node_modules/evil/package.json":           `{"name":"evil-dev","version":"1.0.0"}`,
		"var/lib/taskguard/node_modules/evil/package.json": `{"name":"evil-volume","version":"1.0.0"}`,
		"sys/kernel/node_modules/evil/package.json":        `{"name":"evil-sys","version":"1.0.0"}`,
	}
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "usr/bin/su"), os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func packageNames(pkgs []api.InventoryPackage) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Type+":"+p.Name+"@"+p.Version)
	}
	return out
}

func checkIDs(fs []api.ComplianceFinding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.CheckID)
	}
	return out
}

func TestScanGeneratedRootfs(t *testing.T) {
	root := writeRootfs(t)
	inv, err := Scan(context.Background(), Options{
		Root:      root,
		SkipDirs:  SkipDirsFor(root, filepath.Join(root, "var/lib/taskguard")),
		Env:       []string{"PATH=/usr/bin", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
		UID:       0,
		CPUBudget: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dpkg:base-files@12.4+deb12u5", "dpkg:openssh-server@1:9.2p1-2+deb12u2", "npm:left-pad@1.3.0"}
	if got := packageNames(inv.Packages); !slices.Equal(got, want) {
		t.Errorf("packages = %v, want %v (nothing from proc, sys, dev or the defender's volume)", got, want)
	}
	if inv.OS == nil || inv.OS.Family != "debian" || inv.OS.Name != "12.5" {
		t.Errorf("os = %+v, want debian 12.5", inv.OS)
	}
	wantChecks := []string{"TG-IMG-001", "TG-IMG-003", "TG-IMG-004", "TG-IMG-005", "TG-IMG-006", "TG-IMG-009"}
	if got := checkIDs(inv.Compliance); !slices.Equal(got, wantChecks) {
		t.Errorf("checks = %v, want %v", got, wantChecks)
	}
	for _, f := range inv.Compliance {
		if strings.Contains(f.Message, "wJalrXUtnFEMI") || strings.Contains(f.Message, "MII") {
			t.Errorf("finding %s leaks content: %q", f.CheckID, f.Message)
		}
		if f.CheckID == "TG-IMG-003" && !strings.Contains(f.Message, "AWS_SECRET_ACCESS_KEY") {
			t.Errorf("env finding does not name the variable: %q", f.Message)
		}
	}
	if !strings.HasPrefix(inv.Hash, "sha256:") {
		t.Errorf("hash = %q", inv.Hash)
	}
	if inv.Files < 8 {
		t.Errorf("files = %d, want the walked files counted", inv.Files)
	}
	if err := (&api.Inventory{Container: "c", Hash: inv.Hash, Packages: inv.Packages}).Validate(); err != nil {
		t.Errorf("inventory does not validate: %v", err)
	}
}

func TestScanNonRootCleanContainer(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=alpine\nVERSION_ID=3.19.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := Scan(context.Background(), Options{Root: root, UID: 10001, Env: []string{"HOME=/app"}, CPUBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Compliance) != 0 {
		t.Errorf("findings = %+v, want none for a non-root container without secrets", inv.Compliance)
	}
	if inv.OS == nil || inv.OS.Family != "alpine" {
		t.Errorf("os = %+v", inv.OS)
	}
}

func TestScanMissingRoot(t *testing.T) {
	_, err := Scan(context.Background(), Options{Root: filepath.Join(t.TempDir(), "nope")})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want one naming the missing root", err)
	}
}

// TestScanMatchesImageScan runs the inventory and the analyzers of
// `taskguard image scan --rootfs` on the same debootstrap'ed bookworm and
// wants the same packages and OS.
func TestScanMatchesImageScan(t *testing.T) {
	root := scantest.Debootstrap(t, "bookworm", nil)
	ctx := context.Background()
	inv, err := Scan(ctx, Options{Root: root, CPUBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Open(ctx, root, image.Options{Kind: image.KindRootFS})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	want, err := analyzer.Run(ctx, img, analyzer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Packages) < 50 {
		t.Fatalf("image scan found only %d packages in a debootstrap", len(want.Packages))
	}
	var wantNames []string
	for _, p := range want.Packages {
		wantNames = append(wantNames, p.Type+":"+p.Name+"@"+p.Version)
	}
	if got := packageNames(inv.Packages); !slices.Equal(got, wantNames) {
		t.Errorf("inventory has %d packages, image scan %d; first difference in %v", len(got), len(wantNames), firstDiff(got, wantNames))
	}
	if inv.OS == nil || want.OS == nil || *inv.OS != (api.InventoryOS{Family: want.OS.Family, Name: want.OS.Name}) {
		t.Errorf("os = %+v, image scan %+v", inv.OS, want.OS)
	}
	for i, p := range inv.Packages {
		if w := want.Packages[min(i, len(want.Packages)-1)]; p.SrcName != w.SrcName || p.SrcVersion != w.SrcVersion {
			t.Errorf("package %s source %s %s, image scan %s %s", p.Name, p.SrcName, p.SrcVersion, w.SrcName, w.SrcVersion)
			break
		}
	}
}

func firstDiff(a, b []string) []string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return []string{a[i], b[i]}
		}
	}
	return nil
}

func TestPackageDBHash(t *testing.T) {
	root := writeRootfs(t)
	h1, err := PackageDBHash(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app/data.txt"), []byte("app data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h2, _ := PackageDBHash(root); h2 != h1 {
		t.Errorf("hash changed with an app file: %s → %s", h1, h2)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(dpkgStatus+"\nPackage: curl\nStatus: install ok installed\nVersion: 7.88.1-10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h3, _ := PackageDBHash(root); h3 == h1 {
		t.Error("hash did not change when a package was installed")
	}
}

func TestSkipDirsFor(t *testing.T) {
	tests := []struct {
		name string
		dirs []string
		want []string
	}{
		{"volume", []string{"/var/lib/taskguard"}, []string{"proc", "sys", "dev", "var/lib/taskguard"}},
		{"root itself is never skipped", []string{"/"}, []string{"proc", "sys", "dev"}},
		{"outside root", []string{"/elsewhere"}, []string{"proc", "sys", "dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := "/"
			if tt.name == "outside root" {
				root = "/srv"
			}
			if got := SkipDirsFor(root, tt.dirs...); !slices.Equal(got, tt.want) {
				t.Errorf("SkipDirsFor = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	for v, want := range map[string]bool{"": true, "on": true, "off": false, "OFF": false, "0": false, "false": false} {
		if got := Enabled(func(string) string { return v }); got != want {
			t.Errorf("Enabled(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestRunSkipsUnchanged: one inventory at start, none while the package
// databases stay the same, a new one when a package is installed.
func TestRunSkipsUnchanged(t *testing.T) {
	root := writeRootfs(t)
	// The bubble's fake clock makes "nothing sent for ten intervals" exact:
	// time moves only when every goroutine of the test waits.
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sent []api.Inventory
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Run(ctx, Schedule{
				Options: Options{Root: root, CPUBudget: 1}, Delay: -1, Interval: 20 * time.Millisecond,
			}, func(_ context.Context, inv api.Inventory) error {
				mu.Lock()
				sent = append(sent, inv)
				mu.Unlock()
				return nil
			})
		}()
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(sent)
		}
		waitFor(t, func() bool { return count() >= 1 })
		time.Sleep(200 * time.Millisecond) // ten intervals
		synctest.Wait()
		if n := count(); n != 1 {
			t.Fatalf("%d inventories sent with nothing changed, want 1", n)
		}
		if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(dpkgStatus+"\nPackage: curl\nStatus: install ok installed\nVersion: 7.88.1-10\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return count() >= 2 })
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(packageNames(sent[1].Packages), "dpkg:curl@7.88.1-10") {
			t.Errorf("second inventory lacks the new package: %v", packageNames(sent[1].Packages))
		}
		if sent[0].Container == "" {
			t.Error("container is empty; want the hostname when no identity is set")
		}
	})
}

// TestRunRetriesFailedSend: an inventory the sidecar did not take is sent
// again at the next interval even though nothing changed.
func TestRunRetriesFailedSend(t *testing.T) {
	root := writeRootfs(t)
	var mu sync.Mutex
	calls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Run(ctx, Schedule{Options: Options{Root: root, CPUBudget: 1}, Delay: -1, Interval: 10 * time.Millisecond},
		func(context.Context, api.Inventory) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return os.ErrDeadlineExceeded
			}
			return nil
		})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls >= 2 })
}

func TestRunStopsDuringDelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Schedule{Options: Options{Root: t.TempDir()}, Delay: time.Hour}, func(context.Context, api.Inventory) error {
			t.Error("sent during the delay")
			return nil
		})
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}

// TestThrottleKeepsBudget: with a budget of a quarter, a loop sleeps at
// least about three times as long as it works.
func TestThrottleKeepsBudget(t *testing.T) {
	th := newThrottle(0.25)
	var work time.Duration
	start := time.Now()
	for range 3200 {
		s := time.Now()
		for time.Since(s) < 20*time.Microsecond {
		}
		work += time.Since(s)
		if err := th.tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if wall := time.Since(start); wall < 3*work*8/10 {
		t.Errorf("wall %v for work %v: the throttle let the loop use more than its budget", wall, work)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	th = newThrottle(0.01)
	th.start = time.Now().Add(-time.Second)
	var err error
	for range 64 {
		if err = th.tick(ctx); err != nil {
			break
		}
	}
	if err == nil {
		t.Error("tick ignored a cancelled context")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestScanCustomChecks: an image rule's custom checks (a fileAbsent glob
// and an ENV condition checked against the container's real environment)
// run in the single walk; their failures are findings that name the path
// or variable, never a file's content or an ENV value; passing checks and
// checks of other rules report nothing.
func TestScanCustomChecks(t *testing.T) {
	root := writeRootfs(t)
	writeFile(t, filepath.Join(root, "opt/debug/agent.jar"), "SECRET-CONTENT")
	p := &policy.Policy{Images: []policy.ImageRule{
		{Name: "other", Scope: policy.Scope{Tasks: []string{"db-*"}}, Compliance: policy.ComplianceRule{Custom: []policy.CustomCheck{
			{ID: "OTHER-1", Title: "other family", Severity: "LOW", FileAbsent: "/usr/sbin/sshd"},
		}}},
		{Name: "shop", Scope: policy.Scope{Tasks: []string{"shop"}}, Compliance: policy.ComplianceRule{Custom: []policy.CustomCheck{
			{ID: "ACME-1", Title: "no debug agent", Severity: "high", FileAbsent: "/opt/debug/*.jar"},
			{ID: "ACME-2", Title: "production mode", Severity: "MEDIUM", Env: &policy.EnvCondition{Name: "APP_ENV", Match: "^production$"}},
			{ID: "ACME-3", Title: "no compiler", Severity: "LOW", FileAbsent: "/usr/bin/gcc*"},
			{ID: "ACME-4", Title: "has a region", Severity: "LOW", Env: &policy.EnvCondition{Name: "AWS_REGION"}},
		}}},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	checks, hash := customFor(p, policy.Identity{TaskFamily: "shop", Container: "web"})
	if len(checks) != 4 || hash == "" {
		t.Fatalf("customFor = %d checks, hash %q", len(checks), hash)
	}
	custom, err := customcheck.Compile(checks)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Scan(context.Background(), Options{
		Root: root, SkipDirs: SkipDirsFor(root, filepath.Join(root, "var/lib/taskguard")),
		Env: []string{"APP_ENV=staging-hunter2", "AWS_REGION=eu-west-1"}, UID: 1000, CPUBudget: 1, Custom: custom,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range inv.Compliance {
		if !strings.HasPrefix(f.CheckID, "ACME-") && !strings.HasPrefix(f.CheckID, "OTHER-") {
			continue
		}
		got = append(got, f.CheckID+" "+f.Severity+" "+f.Target+" | "+f.Title+" | "+f.Message)
		if strings.Contains(f.Message, "SECRET-CONTENT") || strings.Contains(f.Message, "hunter2") {
			t.Errorf("finding %s leaks content or an ENV value: %q", f.CheckID, f.Message)
		}
	}
	want := []string{
		"ACME-1 HIGH /opt/debug/agent.jar | no debug agent | file /opt/debug/agent.jar matches /opt/debug/*.jar, which must be absent",
		"ACME-2 MEDIUM container | production mode | ENV APP_ENV does not match ^production$",
	}
	if !slices.Equal(got, want) {
		t.Errorf("custom findings:\n got %q\nwant %q", got, want)
	}
	if other, _ := customFor(p, policy.Identity{TaskFamily: "web"}); other != nil {
		t.Errorf("a family without a rule got custom checks: %+v", other)
	}
}

// TestRunRescansWhenCustomChecksChange: with the package databases
// unchanged, a change of the image rule's custom checks scans again.
func TestRunRescansWhenCustomChecksChange(t *testing.T) {
	root := writeRootfs(t)
	rule := func(glob string) *policy.Policy {
		return &policy.Policy{Images: []policy.ImageRule{{Name: "all", Compliance: policy.ComplianceRule{Custom: []policy.CustomCheck{
			{ID: "ACME-1", Title: "t", Severity: "LOW", FileAbsent: glob},
		}}}}}
	}
	var pol atomic.Pointer[policy.Policy]
	pol.Store(rule("/usr/sbin/sshd"))
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sent []api.Inventory
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Run(ctx, Schedule{
				Options: Options{Root: root, CPUBudget: 1}, Delay: -1, Interval: 20 * time.Millisecond, Policy: pol.Load,
			}, func(_ context.Context, inv api.Inventory) error {
				mu.Lock()
				sent = append(sent, inv)
				mu.Unlock()
				return nil
			})
		}()
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(sent)
		}
		waitFor(t, func() bool { return count() >= 1 })
		time.Sleep(200 * time.Millisecond) // ten intervals
		synctest.Wait()
		if n := count(); n != 1 {
			t.Fatalf("%d inventories sent with nothing changed, want 1", n)
		}
		pol.Store(rule("/nothing/*"))
		waitFor(t, func() bool { return count() >= 2 })
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(checkIDs(sent[0].Compliance), "ACME-1") || slices.Contains(checkIDs(sent[1].Compliance), "ACME-1") {
			t.Errorf("ACME-1 in the first %v and not in the second %v expected", checkIDs(sent[0].Compliance), checkIDs(sent[1].Compliance))
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
