package pipeline

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/fargate"
)

// pipelineTask runs on ARM64 with an app, a worker and a FireLens router.
const pipelineTask = `{
  "family": "shop-ci",
  "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
  "containerDefinitions": [
    {"name": "app", "image": "registry.example/shop/app:1", "entryPoint": ["/app"], "essential": true},
    {"name": "worker", "image": "registry.example/shop/worker:1"},
    {"name": "log_router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
     "firelensConfiguration": {"type": "fluentbit"}}
  ]
}`

// consoleCAFile writes the certificate a console serves to a PEM file.
func consoleCAFile(t *testing.T, c *consoletest.Console) string {
	t.Helper()
	resp, err := c.HTTP.Get(c.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	f := filepath.Join(t.TempDir(), "console-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.TLS.PeerCertificates[0].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRunJobProtectsThroughTheConsoleWithEveryOption: a job protecting
// through a real console passes the selection, fail-closed and platform
// options on (an ARM64 task with linux/arm64 is protected, the excluded
// worker and the FireLens router are left alone, the app fails closed, the
// defender trusts the console's certificate); options the console's API
// cannot take are refused, naming them, instead of dropped.
func TestRunJobProtectsThroughTheConsoleWithEveryOption(t *testing.T) {
	c := consoletest.Start(t)
	dir := t.TempDir()
	task := filepath.Join(dir, "task.json")
	if err := os.WriteFile(task, []byte(pipelineTask), 0o644); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte("ci:\n  - name: tasks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	console := &ConsoleOptions{URL: c.URL, User: "admin", Password: consoletest.AdminPassword, CAFile: consoleCAFile(t, c), NoPublish: true}
	job := func(p fargate.Options) (string, error) {
		// In a folder that does not exist yet: it is made, as for reports.
		out := filepath.Join(t.TempDir(), "deploy", "protected.json")
		_, err := RunJob(context.Background(), JobOptions{
			Run:        Options{TaskPath: task, ProtectOutput: out, Protect: p},
			PolicyFile: policyFile, Console: console,
		})
		b, _ := os.ReadFile(out)
		return string(b), err
	}

	out, err := job(fargate.Options{Exclude: []string{"worker"}, FailClosed: true,
		DefenderPlatforms: []string{fargate.PlatformAMD64, fargate.PlatformARM64}})
	if err != nil {
		t.Fatal(err)
	}
	var td struct {
		ContainerDefinitions []struct {
			Name        string                         `json:"name"`
			EntryPoint  []string                       `json:"entryPoint"`
			Environment []struct{ Name, Value string } `json:"environment"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal([]byte(out), &td); err != nil {
		t.Fatalf("protected task: %v\n%s", err, out)
	}
	envOf := map[string]map[string]string{}
	for _, cd := range td.ContainerDefinitions {
		envOf[cd.Name] = map[string]string{}
		for _, e := range cd.Environment {
			envOf[cd.Name][e.Name] = e.Value
		}
	}
	if envOf["app"][fargate.EnvFailClosed] != "1" {
		t.Errorf("app: %s not written: %v", fargate.EnvFailClosed, envOf["app"])
	}
	for _, n := range []string{"worker", "log_router"} {
		if len(envOf[n]) != 0 {
			t.Errorf("%s was changed: environment %v", n, envOf[n])
		}
	}
	if !strings.HasPrefix(envOf[fargate.DefenderContainerName][fargate.EnvConsoleCAPEM], "-----BEGIN CERTIFICATE-----") {
		t.Errorf("the defender does not get the console's certificate: %v", envOf[fargate.DefenderContainerName])
	}

	// The same job without the platforms: the console refuses the ARM64 task.
	if _, err := job(fargate.Options{Exclude: []string{"worker"}}); err == nil || !strings.Contains(err.Error(), "ARM64") {
		t.Errorf("ARM64 without defender platforms: %v, want the console's refusal naming ARM64", err)
	}
	// Options only an offline protect honours are refused by name.
	_, err = job(fargate.Options{Exclude: []string{"worker"}, DefenderPlatforms: []string{fargate.PlatformARM64},
		ConsoleCAPEM: "-----BEGIN CERTIFICATE-----", DefenderMemoryReservation: 64})
	if err == nil || !strings.Contains(err.Error(), "CA PEM") || !strings.Contains(err.Error(), "memory reservation") {
		t.Errorf("console-only options: %v, want a refusal naming them", err)
	}
	// WAF ports and the health check are refused before the job runs,
	// named as the caller names them.
	_, err = job(fargate.Options{Exclude: []string{"worker"}, DefenderPlatforms: []string{fargate.PlatformARM64},
		WAFPorts: []uint16{8443}, DefenderHealthCheck: true})
	if want := "waf-port and health-check: only a task protected offline takes this; with console the console protects the task"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("WAF ports and health check through the console: %v, want %q", err, want)
	}
}

// TestRunJobOfflineDefenderCA: protected offline, the console's certificate
// given as the defender's CA goes into the task as TASKGUARD_CONSOLE_CA_PEM
// (as task protect --console-ca does); without the console's address it is
// refused by name, and a file holding no certificate is named too.
func TestRunJobOfflineDefenderCA(t *testing.T) {
	c := consoletest.Start(t)
	ca := consoleCAFile(t, c)
	want, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	task := filepath.Join(dir, "task.json")
	if err := os.WriteFile(task, []byte(pipelineTask), 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names := func(in string) string { return "--" + in }
	job := func(addr, caFile string) (map[string]string, error) {
		out := filepath.Join(t.TempDir(), "protected.json")
		_, err := RunJob(context.Background(), JobOptions{
			Run: Options{TaskPath: task, ProtectOutput: out, Protect: fargate.Options{
				ConsoleAddr: addr, AgentToken: "tg-agent-test", Exclude: []string{"worker"},
				DefenderPlatforms: []string{fargate.PlatformARM64},
			}},
			DefenderCAFile: caFile, Names: names,
		})
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var td struct {
			ContainerDefinitions []struct {
				Name        string                         `json:"name"`
				Environment []struct{ Name, Value string } `json:"environment"`
			} `json:"containerDefinitions"`
		}
		if err := json.Unmarshal(b, &td); err != nil {
			t.Fatalf("protected task: %v\n%s", err, b)
		}
		env := map[string]string{}
		for _, cd := range td.ContainerDefinitions {
			if cd.Name == fargate.DefenderContainerName {
				for _, e := range cd.Environment {
					env[e.Name] = e.Value
				}
			}
		}
		return env, nil
	}

	env, err := job(strings.TrimPrefix(c.URL, "https://"), ca)
	if err != nil {
		t.Fatal(err)
	}
	if got := env[fargate.EnvConsoleCAPEM]; strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Errorf("%s = %q, want the console's certificate", fargate.EnvConsoleCAPEM, got)
	}
	if env, err = job(strings.TrimPrefix(c.URL, "https://"), ""); err != nil || env[fargate.EnvConsoleCAPEM] != "" {
		t.Errorf("without a CA file: %v, %s = %q", err, fargate.EnvConsoleCAPEM, env[fargate.EnvConsoleCAPEM])
	}
	if _, err := job("", ca); err == nil || !strings.Contains(err.Error(), "--console-ca") || !strings.Contains(err.Error(), "--console-addr") {
		t.Errorf("a CA without the console's address: %v, want an error naming --console-ca and --console-addr", err)
	}
	if _, err := job(strings.TrimPrefix(c.URL, "https://"), notPEM); err == nil || !strings.Contains(err.Error(), "--console-ca") {
		t.Errorf("a CA file with no certificate: %v, want an error naming --console-ca", err)
	}
}
