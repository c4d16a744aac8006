package console

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/internal/testenv"
)

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
	if !strings.Contains(env["TASKGUARD_CONSOLE"], console) || !strings.HasPrefix(env["TASKGUARD_AGENT_TOKEN"], "tga_") {
		t.Errorf("defender environment %v: want the console address and an agent credential", env)
	}

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
