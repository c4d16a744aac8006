package cli

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/fargate/fargatetest"
	"github.com/taskguard/taskguard/internal/program"
)

// ciArmTask runs on ARM64 with an app and a worker without entryPoint.
const ciArmTask = `{
  "family": "shop-ci",
  "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
  "containerDefinitions": [
    {"name": "app", "image": "registry.example/shop/app:1", "entryPoint": ["/app"], "essential": true},
    {"name": "worker", "image": "registry.example/shop/worker:1"}
  ]
}`

// TestCIProtectSelectionFlags: taskguard ci takes task protect's selection,
// fail-closed and platform flags, offline and through a real console. The
// ARM64 task with an unprotectable worker is refused without them and
// protected with --exclude worker --fail-closed --defender-platforms.
func TestCIProtectSelectionFlags(t *testing.T) {
	dir := t.TempDir()
	task := filepath.Join(dir, "task.json")
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(task, []byte(ciArmTask), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pol, []byte("ci:\n  - name: tasks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := consoletest.Start(t)
	resp, err := c.HTTP.Get(c.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	caFile := filepath.Join(dir, "console.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.TLS.PeerCertificates[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConsoleUser, "admin")
	t.Setenv(EnvConsolePassword, consoletest.AdminPassword)
	flags := []string{"--exclude", "worker", "--fail-closed", "--defender-platforms", "linux/amd64,linux/arm64"}
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"offline", []string{"--console-addr", "console.example.com:8083", "--agent-token-secret", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tg-agent"}},
		{"console", []string{"--console", c.URL, "--console-ca", caFile, "--no-publish"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "protected.json")
			args := append([]string{"ci", "--task", task, "--policy", pol, "--format", "none", "--protected-task-output", out}, mode.args...)
			if _, errOut, code := run(t, args...); code == program.ExitOK || !strings.Contains(errOut, "ARM64") && !strings.Contains(errOut, "worker") {
				t.Errorf("without the flags: code %d, want a refusal naming ARM64 or the worker: %s", code, errOut)
			}
			if _, errOut, code := run(t, append(args, flags...)...); code != program.ExitOK {
				t.Fatalf("with the flags: code %d: %s", code, errOut)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), `"TASKGUARD_FAIL_CLOSED"`); n != 1 {
				t.Errorf("TASKGUARD_FAIL_CLOSED written %d times, want once (the app only):\n%s", n, b)
			}
		})
	}
}

// TestCIProtectWAFPortAndHealthCheck: taskguard ci takes task protect's
// --waf-port and --health-check for a task protected offline (the defender
// maps the ports and gets a health check; the app waits for HEALTHY),
// refuses a bad port by name, and refuses both with --console before
// anything runs, since the console's API takes neither.
func TestCIProtectWAFPortAndHealthCheck(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("ci:\n  - name: tasks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"ci", "--task", "../testdata/taskdef/seeds-sample.json", "--policy", pol, "--format", "none",
		"--console-addr", "console.example.com:8083", "--agent-token-secret", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tg-agent"}
	protect := func(t *testing.T, flags ...string) fargatetest.Defender {
		t.Helper()
		out := filepath.Join(t.TempDir(), "protected.json")
		if _, errOut, code := run(t, append(append(base, "--protected-task-output", out), flags...)...); code != program.ExitOK {
			t.Fatalf("ci %v: code %d: %s", flags, code, errOut)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return fargatetest.ReadDefender(t, b)
	}
	const app = "twistlock-fargate-task"
	if diff := protect(t).Diff(nil, false, app); diff != "" {
		t.Errorf("without the flags: %s", diff)
	}
	if diff := protect(t, "--waf-port", "9443,8443", "--waf-port", "8443", "--health-check").Diff([]int{8443, 9443}, true, app); diff != "" {
		t.Errorf("with --waf-port and --health-check: %s", diff)
	}

	for _, tt := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"bad port", []string{"--waf-port", "8443,70000"}, `invalid argument "8443,70000" for "--waf-port" flag: "70000" is not a port between 1 and 65535`},
		{"port zero", []string{"--waf-port", "0"}, `"0" is not a port between 1 and 65535`},
		{"with the console", []string{"--console", "https://127.0.0.1:1", "--waf-port", "8443", "--health-check"},
			"--waf-port and --health-check: only a task protected offline takes this; with --console the console protects the task"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvConsoleToken, "tok")
			out := filepath.Join(t.TempDir(), "protected.json")
			_, errOut, code := run(t, append(append(base, "--protected-task-output", out), tt.flags...)...)
			if code != program.ExitError || !strings.Contains(errOut, tt.want) {
				t.Errorf("code %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a refused protect wrote the protected task")
			}
		})
	}
}
