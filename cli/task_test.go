package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/tlscert"
)

var taskguardBin string

// TestMain builds the real taskguard binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "taskguard-cli-test")
	if err != nil {
		panic(err)
	}
	taskguardBin = filepath.Join(dir, "taskguard")
	build := exec.Command("go", "build", "-o", taskguardBin, "../cmd/taskguard")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// commandBound is how long a test lets the taskguard binary run before it
// kills it: a command that stalls (past its --timeout) fails the test
// instead of hanging it.
const commandBound = 60 * time.Second

func runTaskguard(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, taskguardBin, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("taskguard %s did not end within %s (killed): nothing bounded the run\nstderr: %s", strings.Join(args, " "), commandBound, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

const seedsSample = "../testdata/taskdef/seeds-sample.json"

func TestTaskProtectCLI(t *testing.T) {
	dir := t.TempDir()
	seed, err := os.ReadFile(seedsSample)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		env        []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "stdout", args: []string{"task", "protect", seedsSample}, wantStdout: `"/var/lib/taskguard/defender",`},
		{name: "stdin", args: []string{"task", "protect", "-"}, stdin: string(seed), wantStdout: `"name": "taskguard-defender"`},
		{name: "token from env", args: []string{"task", "protect", seedsSample, "--console-addr", "c:8083"}, env: []string{"TASKGUARD_AGENT_TOKEN=tok-123"}, wantStdout: `"value": "tok-123"`, wantStderr: "note: no --console-ca: the defender trusts https://c:8083 only if its certificate is publicly trusted"},
		{name: "secret arn", args: []string{"task", "protect", seedsSample, "--console-addr", "c:8083", "--agent-token-secret", "arn:aws:ssm:us-east-1:1:parameter/tg"}, wantStdout: `"valueFrom": "arn:aws:ssm:us-east-1:1:parameter/tg"`},
		{name: "waf port", args: []string{"task", "protect", seedsSample, "--waf-port", "8080"}, wantStdout: `"containerPort": 8080`},
		{name: "console without credential", args: []string{"task", "protect", seedsSample, "--console-addr", "c:8083"}, env: []string{"TASKGUARD_AGENT_TOKEN="}, wantCode: 2, wantStderr: "needs an agent credential"},
		{name: "missing file", args: []string{"task", "protect", filepath.Join(dir, "nope.json")}, wantCode: 2, wantStderr: "nope.json: no such file or directory"},
		{name: "not json", args: []string{"task", "protect", "-"}, stdin: "<html>", wantCode: 2, wantStderr: "invalid JSON at line 1, column 1"},
		{name: "no entrypoint", args: []string{"task", "protect", "../testdata/taskdef/no-entrypoint.json"}, wantCode: 2, wantStderr: `container "reports" has no entryPoint`},
		{name: "bad port", args: []string{"task", "protect", seedsSample, "--waf-port", "70000"}, wantCode: 2, wantStderr: `"70000" is not a port`},
		{name: "no args", args: []string{"task", "protect"}, wantCode: 2, wantStderr: "accepts 1 arg"},
		{name: "report on stderr", args: []string{"task", "protect", "../testdata/taskdef/corpus/appmesh-firelens.json"}, wantStdout: `"name": "taskguard-defender"`,
			wantStderr: "protected: app\nnot protected: envoy: the proxyConfiguration container (App Mesh / Service Connect proxy); include it by name to protect it\nnot protected: log_router: FireLens log router"},
		{name: "exclude and fail closed", args: []string{"task", "protect", "../testdata/taskdef/corpus/web-worker.json", "--exclude", "worker", "--fail-closed"}, wantStdout: `"name": "TASKGUARD_FAIL_CLOSED",`, wantStderr: "not protected: worker: excluded by name"},
		{name: "arm64 refused", args: []string{"task", "protect", "../testdata/taskdef/corpus/arm64.json"}, wantCode: 2, wantStderr: "--defender-platforms linux/amd64,linux/arm64"},
		{name: "arm64 declared", args: []string{"task", "protect", "../testdata/taskdef/corpus/arm64.json", "--defender-platforms", "linux/amd64,linux/arm64"}, wantStdout: `"cpuArchitecture": "ARM64"`},
		{name: "windows refused", args: []string{"task", "protect", "../testdata/taskdef/corpus/windows.json"}, wantCode: 2, wantStderr: "Windows task definitions cannot be protected"},
		{name: "plain http console", args: []string{"task", "protect", seedsSample, "--console-addr", "http://10.0.2.2:8083"}, env: []string{"TASKGUARD_AGENT_TOKEN=tok"}, wantStdout: `"value": "http://10.0.2.2:8083"`},
		{name: "console ca without addr", args: []string{"task", "protect", seedsSample, "--console-ca", seedsSample}, wantCode: 2, wantStderr: "give --console-addr too"},
		{name: "console ca not pem", args: []string{"task", "protect", seedsSample, "--console-addr", "c:8083", "--console-ca", seedsSample}, env: []string{"TASKGUARD_AGENT_TOKEN=tok"}, wantCode: 2, wantStderr: "not a PEM file of certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runTaskguard(t, tt.stdin, tt.env, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, r.stderr)
			}
			if tt.wantCode == 0 && !json.Valid([]byte(r.stdout)) {
				t.Errorf("stdout is not JSON:\n%s", r.stdout)
			}
		})
	}
}

// -o writes the file only on success; a failed run leaves an existing file alone.
func TestTaskProtectOutputFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "protected.json")
	if r := runTaskguard(t, "", nil, "task", "protect", seedsSample, "-o", out); r.code != 0 || r.stdout != "" {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	first, err := os.ReadFile(out)
	if err != nil || !json.Valid(first) {
		t.Fatalf("output %s: %v", out, err)
	}
	if r := runTaskguard(t, "{", nil, "task", "protect", "-", "-o", out); r.code != 2 {
		t.Fatalf("bad input: code %d", r.code)
	}
	after, _ := os.ReadFile(out)
	if !bytes.Equal(first, after) {
		t.Error("a failed run changed the existing output file")
	}
	// The protected output protects again to the same bytes.
	again := filepath.Join(t.TempDir(), "again.json")
	if r := runTaskguard(t, "", nil, "task", "protect", out, "-o", again); r.code != 0 {
		t.Fatalf("re-protect: %s", r.stderr)
	}
	if b, _ := os.ReadFile(again); !bytes.Equal(b, first) {
		t.Error("re-protecting the output changed it")
	}
}

// --console-ca: the console's self-signed certificate (as the console makes
// it in its data directory) goes into the defender as
// TASKGUARD_CONSOLE_CA_PEM; an address it does not cover is warned about.
func TestTaskProtectConsoleCA(t *testing.T) {
	dir := t.TempDir()
	res, err := tlscert.Load(tlscert.Options{Dir: dir, SANs: []string{"10.0.2.2"}})
	if err != nil {
		t.Fatal(err)
	}
	pemText, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"TASKGUARD_AGENT_TOKEN=tok"}
	r := runTaskguard(t, "", env, "task", "protect", seedsSample, "--console-addr", "10.0.2.2:8083", "--console-ca", res.Path)
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("code %d stderr %s", r.code, r.stderr)
	}
	var task struct {
		C []struct {
			Name        string
			Environment []struct{ Name, Value string }
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &task); err != nil {
		t.Fatal(err)
	}
	var got string
	for _, e := range task.C[len(task.C)-1].Environment {
		if e.Name == "TASKGUARD_CONSOLE_CA_PEM" {
			got = e.Value
		}
	}
	if got != string(pemText) {
		t.Errorf("TASKGUARD_CONSOLE_CA_PEM = %q, want the certificate file", got)
	}
	r = runTaskguard(t, "", env, "task", "protect", seedsSample, "--console-addr", "console.example.com:8083", "--console-ca", res.Path)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: the console's certificate does not cover console.example.com") {
		t.Errorf("uncovered name: code %d stderr %s", r.code, r.stderr)
	}
}

func TestTaskProtectYAMLFile(t *testing.T) {
	in := filepath.Join(t.TempDir(), "task.yaml")
	if err := os.WriteFile(in, []byte("family: web\ncontainerDefinitions:\n- name: web\n  image: nginx\n  entryPoint: [/docker-entrypoint.sh]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTaskguard(t, "", nil, "task", "protect", in)
	if r.code != 0 || !strings.Contains(r.stdout, "- /var/lib/taskguard/defender\n") {
		t.Fatalf("code %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	if r := runTaskguard(t, "", nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "taskguard ") {
		t.Fatalf("%+v", r)
	}
}
