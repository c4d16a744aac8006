package console

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/internal/testenv"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// verifyConsoleWithDefenderEnv connects to TASKGUARD_CONSOLE trusting only
// TASKGUARD_CONSOLE_CA_PEM, as the sidecar does when the system roots do not
// know the console's certificate.
func verifyConsoleWithDefenderEnv(t *testing.T, env map[string]string) {
	t.Helper()
	verifyConsoleWithDefenderEnvAt(t, env, "")
}

// verifyConsoleWithDefenderEnvAt is verifyConsoleWithDefenderEnv connecting
// to dial (when not empty) instead of the host of TASKGUARD_CONSOLE, whose
// name is still the one verified: a name the test cannot resolve.
func verifyConsoleWithDefenderEnvAt(t *testing.T, env map[string]string, dial string) {
	t.Helper()
	u, err := url.Parse(env["TASKGUARD_CONSOLE"])
	if err != nil || u.Scheme != "https" {
		t.Fatalf("TASKGUARD_CONSOLE = %q", env["TASKGUARD_CONSOLE"])
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(env["TASKGUARD_CONSOLE_CA_PEM"])) {
		t.Fatalf("TASKGUARD_CONSOLE_CA_PEM holds no certificate: %q", env["TASKGUARD_CONSOLE_CA_PEM"])
	}
	if dial == "" {
		dial = u.Host
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", dial, &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake with only the defender's CA PEM: %v", err)
	}
	if len(conn.ConnectionState().VerifiedChains) == 0 {
		t.Error("no verified chain")
	}
	conn.Close()
	// Negative control: without the PEM (system roots only) the same handshake fails.
	if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", dial, &tls.Config{ServerName: u.Hostname()}); err == nil {
		conn.Close()
		t.Error("the console's certificate verified without the PEM: the test proves nothing")
	}
}

// botocoreAccepts runs botocore's ParamValidator (Debian's python3-botocore,
// what the AWS CLI validates with) on RegisterTaskDefinition input in file.
func botocoreAccepts(t *testing.T, file string) {
	t.Helper()
	needTools(t, "python3")
	const script = `
import json, sys
import botocore.session
from botocore.validate import ParamValidator
shape = botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
report = ParamValidator().validate(json.load(open(sys.argv[1])), shape)
if report.has_errors():
    print(report.generate_report())
    sys.exit(1)
`
	cmd := exec.Command("python3", "-c", script, file)
	cmd.Env = append(os.Environ(), "PYTHONPATH=/usr/lib/python3/dist-packages", "PYTHONNOUSERSITE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "No module named 'botocore'") && os.Getenv("CI") == "" {
			t.Skipf("python3-botocore is not installed")
		}
		t.Errorf("botocore refuses %s: %v\n%s", file, err, out)
	}
}

// needTools skips when a program the test drives is missing, except in CI,
// where scripts/install-deps.sh installs it and a skip would hide a gap.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			testenv.Skip(t, "%s is not installed (scripts/install-deps.sh installs it)", n)
		}
	}
}

// TestSeedsJenkinsFlow runs the seeds' Jenkins shell step, unchanged apart
// from the host name, with the real curl and jq against a real console: a
// defender-manager made with "taskguard-console user add" sends the seeds'
// sample task and gets the protected one.
func TestSeedsJenkinsFlow(t *testing.T) {
	needTools(t, "curl", "jq", "sh")
	dir := t.TempDir()
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.AdminPassword = "admin-password"
	c := start(t, cfg)

	pass, _, err := runCommand(t, "", "--data-dir", cfg.DataDir, "user", "add", "--role", "defender-manager", "twistlockDefenderManager")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "workspace")
	os.Mkdir(work, 0o755)
	sample, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "taskdef", "seeds-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(work, "fargate.json"), sample, 0o644)

	// The seeds' step, word for word.
	const step = `curl -s -k -u $TL_USER:$TL_PASS https://$TL_CONSOLE/api/v1/defenders/fargate.json?consoleaddr=$TL_CONSOLE -X POST -H "Content-Type:application/json" --data-binary "@fargate.json" | jq . > tw_fargate.json`
	console := strings.TrimPrefix(c.URL(), "https://")
	run := func(user, password string) []byte {
		cmd := exec.Command("sh", "-c", step)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "TL_USER="+user, "TL_PASS="+password, "TL_CONSOLE="+console)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the Jenkins step: %v\n%s", err, out)
		}
		out, err := os.ReadFile(filepath.Join(work, "tw_fargate.json"))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	out := run("twistlockDefenderManager", strings.TrimSpace(pass))
	var task struct {
		Family               string `json:"family"`
		ContainerDefinitions []struct {
			Name        string   `json:"name"`
			Image       string   `json:"image"`
			EntryPoint  []string `json:"entryPoint"`
			Environment []struct{ Name, Value string }
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(out, &task); err != nil {
		t.Fatalf("tw_fargate.json is not JSON: %v\n%s", err, out)
	}
	if task.Family != "twistlock-fargate-task" || len(task.ContainerDefinitions) != 2 {
		t.Fatalf("tw_fargate.json:\n%s", out)
	}
	app, def := task.ContainerDefinitions[0], task.ContainerDefinitions[1]
	if want := []string{"/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh"}; app.Image != "matthewabq/twistlock-fargate-auto" || !slices.Equal(app.EntryPoint, want) {
		t.Errorf("app container: image %s entryPoint %q, want entryPoint %q", app.Image, app.EntryPoint, want)
	}
	if def.Name != "taskguard-defender" {
		t.Errorf("appended container %q, want taskguard-defender", def.Name)
	}
	env := map[string]string{}
	for _, e := range def.Environment {
		env[e.Name] = e.Value
	}
	if env["TASKGUARD_CONSOLE"] != "https://"+console || !strings.HasPrefix(env["TASKGUARD_AGENT_TOKEN"], "tga_") {
		t.Errorf("defender environment %v: want the console address and an agent credential", env)
	}
	// The answer, byte for byte as jq prints it, apart from the values that
	// change per run (the console's port, the minted token, its certificate).
	normalized := string(out)
	for value, placeholder := range map[string]string{
		console: "CONSOLE", env["TASKGUARD_AGENT_TOKEN"]: "AGENT_TOKEN",
		strings.ReplaceAll(env["TASKGUARD_CONSOLE_CA_PEM"], "\n", `\n`): "CONSOLE_CA_PEM",
	} {
		normalized = strings.ReplaceAll(normalized, value, placeholder)
	}
	golden := filepath.Join("testdata", "seeds-tw_fargate.json")
	if *updateGolden {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(normalized), 0o644)
	}
	if want, err := os.ReadFile(golden); err != nil || string(want) != normalized {
		t.Errorf("tw_fargate.json differs from %s (%v; run with -update after checking):\n%s", golden, err, normalized)
	}
	// The defender's environment alone lets it verify the console: a real
	// TLS handshake to the console with only that PEM as the root pool, for
	// the host name in TASKGUARD_CONSOLE.
	verifyConsoleWithDefenderEnv(t, env)
	// What the seeds' curl wrote registers: it fits the ECS
	// RegisterTaskDefinition input, checked by botocore itself (the AWS CLI's
	// validator) and by protect's embedded copy of its model.
	model, err := fargate.RegisterTaskDefinitionModel()
	if err != nil {
		t.Fatal(err)
	}
	if probs, err := model.Validate(out); err != nil || len(probs) > 0 {
		t.Errorf("tw_fargate.json does not fit the ECS model: %v %v", probs, err)
	}
	botocoreAccepts(t, filepath.Join(work, "tw_fargate.json"))

	// The same step with a wrong password gets the bare 401 answer.
	out = run("twistlockDefenderManager", "wrong-password")
	var e struct{ Error string }
	if json.Unmarshal(out, &e); e.Error != "unauthorized" {
		t.Errorf("with a wrong password tw_fargate.json = %s", out)
	}
}

// TestClientProtect drives the same flow through the Go client with a bearer token.
func TestClientProtect(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t, t.TempDir())
	cfg.AdminPassword = "admin-password"
	c := start(t, cfg)
	tok, err := client(t, c).Authenticate(ctx, "admin", "admin-password")
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "taskdef", "describe-output.json"))
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t, c, api.WithToken(tok.Token))
	out, err := cl.ProtectFargate(ctx, sample, api.ProtectOptions{ConsoleAddr: "console.internal:8083", DefenderImage: "registry.example.com/taskguard/defender:1.2"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"registry.example.com/taskguard/defender:1.2"`) || strings.Contains(string(out), "taskDefinitionArn") {
		t.Errorf("protected describe output:\n%s", out)
	}
	_, err = cl.ProtectFargate(ctx, []byte(`{}`), api.ProtectOptions{ConsoleAddr: "c"})
	var se *api.StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || !strings.Contains(se.Message, "invalid task definition") {
		t.Errorf("bad task through the client: %#v", err)
	}
}
