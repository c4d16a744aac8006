package action

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sethvargo/go-githubactions"

	"github.com/taskguard/taskguard/cli"
	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/fargate/fargatetest"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/internal/testenv"
)

type step struct {
	gha                 *githubactions.Action
	log                 *bytes.Buffer
	outputFile, summary string
	env                 map[string]string
	stdout              bytes.Buffer
}

// newStep is a GitHub Actions step environment: inputs as INPUT_* variables,
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, the workflow command log.
func newStep(t *testing.T, inputs map[string]string) *step {
	t.Helper()
	dir := t.TempDir()
	s := &step{log: &bytes.Buffer{}, outputFile: filepath.Join(dir, "output"), summary: filepath.Join(dir, "summary.md")}
	for _, f := range []string{s.outputFile, s.summary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.env = map[string]string{"GITHUB_OUTPUT": s.outputFile, "GITHUB_STEP_SUMMARY": s.summary, "RUNNER_TEMP": dir}
	for k, v := range inputs {
		s.env["INPUT_"+strings.ToUpper(k)] = v
	}
	s.gha = githubactions.New(githubactions.WithGetenv(func(k string) string { return s.env[k] }), githubactions.WithWriter(s.log))
	return s
}

func (s *step) run(t *testing.T) (int, error) {
	t.Helper()
	code, err := Run(context.Background(), s.gha, Options{Stdout: &s.stdout, Stderr: io.Discard})
	// Credentials go to the job as typed options, never through the
	// process environment.
	for _, k := range []string{"TASKGUARD_AGENT_TOKEN", cli.EnvConsolePassword, cli.EnvConsoleToken, cli.EnvConsoleUser} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("the action set %s=%q in its environment", k, v)
		}
	}
	return code, err
}

// outputs parses the GITHUB_OUTPUT file (name<<delimiter ... delimiter).
func (s *step) outputs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(s.outputFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

var (
	dbOnce sync.Once
	dbDir  string
	dbErr  string
)

// vulnDB builds one vulnerability DB from the real advisories in ../shared.
func vulnDB(t *testing.T) string {
	t.Helper()
	src := filepath.Join(testenv.SharedDir(t), "corpora", "advisories")
	dbOnce.Do(func() {
		dir, err := os.MkdirTemp("", "taskguard-action-db")
		if err != nil {
			dbErr = err.Error()
			return
		}
		root := cli.NewRootCommand()
		var out bytes.Buffer
		root.SetArgs([]string{"db", "build", "--advisories", src, "--cache-dir", dir})
		root.SetOut(&out)
		root.SetErr(&out)
		if err := root.Execute(); err != nil {
			dbErr = err.Error() + "\n" + out.String()
		}
		dbDir = dir
	})
	if dbErr != "" {
		t.Fatal(dbErr)
	}
	return dbDir
}

// lodashImage writes a docker-archive tarball of a Debian 12 image with
// lodash 4.17.20 (CVE-2021-23337, HIGH, fixed in 4.17.21).
func lodashImage(t *testing.T) string {
	t.Helper()
	return imageTarball(t, "registry.example.com/shop/web:1.4", map[string]string{
		"etc/os-release":                       "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status":                  "",
		"app/node_modules/lodash/package.json": `{"name":"lodash","version":"4.17.20"}`,
	})
}

// imageTarball writes a docker-archive tarball, tagged ref, of an image with
// one layer holding files (path → content).
func imageTarball(t *testing.T, ref string, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTaskDefinitionOnly(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tg_fargate.json")
	s := newStep(t, map[string]string{
		"task-definition":       "../testdata/taskdef/seeds-sample.json",
		"protected-task-output": out,
		"console-addr":          "console.example.com:8083",
		"agent-token":           "s3cret-agent-token",
	})
	code, err := s.run(t)
	if code != program.ExitOK || err != nil {
		t.Fatalf("code %d, err %v\n%s", code, err, s.log)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"/var/lib/taskguard/defender"`) || !strings.Contains(string(b), "s3cret-agent-token") {
		t.Fatalf("protected task: %v\n%s", err, b)
	}
	o := s.outputs(t)
	if o["result"] != "passed" || o["protected-task-definition"] != out || o["compliance"] == "0" {
		t.Errorf("outputs = %v", o)
	}
	log := s.log.String()
	for _, want := range []string{"::add-mask::s3cret-agent-token", "::warning file=../testdata/taskdef/seeds-sample.json,title=TG-TASK-003 Container runs as root::"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if sum, _ := os.ReadFile(s.summary); !strings.Contains(string(sum), "## ✅ taskguard") {
		t.Errorf("job summary:\n%s", sum)
	}
}

func TestBlockedImage(t *testing.T) {
	db, img := vulnDB(t), lodashImage(t)
	junit := filepath.Join(t.TempDir(), "taskguard.junit.xml")
	inputs := map[string]string{"input": img, "cache-dir": db, "offline": "true", "severity-cutoff": "high", "junit": junit, "dockerfile": "Dockerfile"}

	s := newStep(t, inputs)
	code, err := s.run(t)
	if code != program.ExitBlocked || err == nil || !strings.Contains(err.Error(), "CVE-2021-23337 (HIGH, lodash 4.17.20)") {
		t.Fatalf("code %d, err %v\n%s", code, err, s.log)
	}
	o := s.outputs(t)
	if o["result"] != "blocked" || o["high"] != "1" || o["junit"] != junit {
		t.Errorf("outputs = %v", o)
	}
	if !strings.Contains(s.log.String(), "::error file=Dockerfile,title=HIGH CVE-2021-23337 in lodash::CVE-2021-23337 lodash 4.17.20: fixed in 4.17.21") {
		t.Errorf("no error annotation:\n%s", s.log)
	}
	if _, err := os.Stat(junit); err != nil {
		t.Errorf("junit report: %v", err)
	}
	if !strings.Contains(s.stdout.String(), "BLOCKED") {
		t.Errorf("stdout:\n%s", s.stdout.String())
	}

	inputs["fail-build"] = "false"
	s = newStep(t, inputs)
	if code, err := s.run(t); code != program.ExitOK || err != nil || !strings.Contains(s.log.String(), "fail-build is false") {
		t.Fatalf("fail-build false: code %d err %v\n%s", code, err, s.log)
	}

	// The default policy blocks only fixed criticals: the same image passes.
	delete(inputs, "severity-cutoff")
	s = newStep(t, inputs)
	if code, err := s.run(t); code != program.ExitOK || err != nil || s.outputs(t)["result"] != "passed" {
		t.Fatalf("default policy: code %d err %v\n%s", code, err, s.log)
	}
}

func TestInputErrors(t *testing.T) {
	// A tarball that exists: the DB step comes after the image is found.
	tarball := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(tarball, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		inputs  map[string]string
		wantErr string
	}{
		{"nothing", map[string]string{}, "nothing to check"},
		{"bad bool", map[string]string{"task-definition": "x", "fail-build": "yes please"}, `input "fail-build": "yes please" is not true or false`},
		{"console without credentials", map[string]string{"task-definition": "x", "console-url": "https://c:8083"}, `needs "console-token"`},
		{"missing task", map[string]string{"task-definition": "nope.json"}, "read task definition: open nope.json"},
		{"missing tarball", map[string]string{"input": "nope.tar", "offline": "true", "cache-dir": vulnDB(t)}, "nope.tar"},
		{"missing tarball before the DB", map[string]string{"input": "nope.tar", "offline": "true", "cache-dir": t.TempDir()}, "image nope.tar: no such file"},
		{"no DB offline", map[string]string{"input": tarball, "offline": "true", "cache-dir": t.TempDir()}, "--offline forbids downloading"},
		{"no entrypoint", map[string]string{"task-definition": "../testdata/taskdef/no-entrypoint.json", "protected-task-output": filepath.Join(t.TempDir(), "o.json")}, `container "reports" has no entryPoint`},
		{"bad waf port", map[string]string{"task-definition": "x", "waf-port": "8443,\nhttps"}, `input "waf-port": "https" is not a port between 1 and 65535`},
		{"waf port too large", map[string]string{"task-definition": "x", "waf-port": "65536"}, `input "waf-port": "65536" is not a port between 1 and 65535`},
		{"bad health check", map[string]string{"task-definition": "x", "health-check": "yes"}, `input "health-check": "yes" is not true or false`},
		{"bad timeout", map[string]string{"task-definition": "x", "timeout": "soon"}, `input "timeout": "soon" is not a duration such as 10m or 1h30m (0: no limit)`},
		{"negative timeout", map[string]string{"task-definition": "x", "timeout": "-5m"}, `input "timeout" -5m0s: want a duration such as 10m or 1h30m, or 0 for no limit`},
		// Refused before the console is reached (nothing listens there).
		{"waf port and health check with a console", map[string]string{"task-definition": "../testdata/taskdef/seeds-sample.json", "console-url": "https://127.0.0.1:1",
			"console-token": "tok", "waf-port": "8443", "health-check": "true"},
			`input "waf-port" and input "health-check": only a task protected offline takes this; with input "console-url" the console protects the task`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStep(t, tt.inputs)
			code, err := s.run(t)
			if code != program.ExitError || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("code %d, err %v, want 2 and %q", code, err, tt.wantErr)
			}
		})
	}
}

// A GITHUB_OUTPUT that cannot be written is a clear error (exit 2), not a
// panic, and the reports are written before it.
func TestOutputWriteFailure(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "taskguard.junit.xml")
	s := newStep(t, map[string]string{"task-definition": "../testdata/taskdef/seeds-sample.json", "junit": junit, "protected-task-output": filepath.Join(t.TempDir(), "p.json"), "agent-token": "tok"})
	s.env["GITHUB_OUTPUT"] = t.TempDir() // a directory: opening it for append fails
	code, err := s.run(t)
	if code != program.ExitError || err == nil || !strings.Contains(err.Error(), "write the step's outputs (GITHUB_OUTPUT)") {
		t.Fatalf("code %d, err %v; want 2 and the outputs named", code, err)
	}
	if !fileExists(junit) {
		t.Error("the JUnit report was not written before the failing output")
	}
	s.env["GITHUB_OUTPUT"] = filepath.Join(t.TempDir(), "out")
	s.env["GITHUB_STEP_SUMMARY"] = t.TempDir()
	if code, err := s.run(t); code != program.ExitError || err == nil || !strings.Contains(err.Error(), "job summary (GITHUB_STEP_SUMMARY)") {
		t.Fatalf("summary: code %d, err %v", code, err)
	}
}

// A failed protect fails the step (exit 2) after the summary and the
// outputs are written.
func TestProtectFailureStillReports(t *testing.T) {
	s := newStep(t, map[string]string{"task-definition": "../testdata/taskdef/no-entrypoint.json", "protected-task-output": filepath.Join(t.TempDir(), "o.json")})
	code, err := s.run(t)
	if code != program.ExitError || err == nil || !strings.Contains(err.Error(), `container "reports" has no entryPoint`) {
		t.Fatalf("code %d, err %v", code, err)
	}
	if o := s.outputs(t); o["result"] != "passed" || o["protected-task-definition"] != "" {
		t.Errorf("outputs = %v", o)
	}
	if sum, _ := os.ReadFile(s.summary); !strings.Contains(string(sum), "the task definition was not protected") {
		t.Errorf("job summary:\n%s", sum)
	}
}

// With a console, the job takes its CI rules from it, has it protect the
// task, and publishes the results, with the credentials as typed options.
func TestConsole(t *testing.T) {
	c, err := console.Start(context.Background(), console.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminUser: "admin", AdminPassword: "correct-horse-battery"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	ca := filepath.Join(t.TempDir(), "console.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tg_fargate.json")
	inputs := map[string]string{
		"task-definition": "../testdata/taskdef/seeds-sample.json", "protected-task-output": out,
		"console-url": c.URL(), "console-ca": ca, "console-user": "admin", "console-password": "correct-horse-battery",
	}
	s := newStep(t, inputs)
	if code, err := s.run(t); code != program.ExitOK || err != nil {
		t.Fatalf("code %d, err %v\n%s", code, err, s.log)
	}
	b, err := os.ReadFile(out)
	host := strings.TrimPrefix(c.URL(), "https://")
	if err != nil || !strings.Contains(string(b), `"name": "TASKGUARD_AGENT_TOKEN"`) || !strings.Contains(string(b), `"value": "https://`+host+`"`) {
		t.Fatalf("protected task: %v\n%s", err, b)
	}
	if !strings.Contains(s.log.String(), "::add-mask::correct-horse-battery") {
		t.Errorf("the console password is not masked:\n%s", s.log)
	}
	admin, err := api.NewClient(c.URL(), api.WithBasicAuth("admin", "correct-horse-battery"), api.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	page, err := admin.Scans(context.Background(), "", "")
	if err != nil || len(page.Scans) != 1 || page.Scans[0].Result != "passed" {
		t.Fatalf("published scans: %+v (%v)", page, err)
	}

	inputs["console-password"] = "wrong"
	s = newStep(t, inputs)
	if code, err := s.run(t); code != program.ExitError || err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: code %d, err %v", code, err)
	}
}

// The protect options and the SBOM reach the job through the step's inputs:
// an ARM64 task is refused without defender-platforms and protected with
// it, fail-closed is written into the app container, and the SBOM of the
// scanned image is written and named in the outputs.
func TestProtectInputsAndSBOM(t *testing.T) {
	db, img := vulnDB(t), lodashImage(t)
	dir := t.TempDir()
	out, sbomPath := filepath.Join(dir, "tg_fargate.json"), filepath.Join(dir, "web.spdx.json")
	inputs := map[string]string{
		"input": img, "cache-dir": db, "offline": "true", "layer-cache": "false",
		"task-definition": "../testdata/taskdef/corpus/arm64.json", "protected-task-output": out,
		"console-addr": "console.example.com:8083", "agent-token": "tok", "fail-closed": "true",
		"sbom": sbomPath,
	}
	s := newStep(t, inputs)
	if code, err := s.run(t); code != program.ExitError || err == nil || !strings.Contains(err.Error(), "defender-platforms") {
		t.Fatalf("ARM64 without defender-platforms: code %d, err %v; want 2 and the option named\n%s", code, err, s.log)
	}

	inputs["defender-platforms"] = "linux/amd64,\nlinux/arm64"
	s = newStep(t, inputs)
	if code, err := s.run(t); code != program.ExitOK || err != nil {
		t.Fatalf("code %d, err %v\n%s", code, err, s.log)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"TASKGUARD_FAIL_CLOSED"`) || !strings.Contains(string(b), `"ARM64"`) {
		t.Errorf("protected task lacks fail-closed or the ARM64 platform: %v\n%s", err, b)
	}
	doc, err := os.ReadFile(sbomPath)
	if err != nil || !strings.Contains(string(doc), `"spdxVersion": "SPDX-2.3"`) || !strings.Contains(string(doc), "pkg:npm/lodash@4.17.20") {
		t.Errorf("SBOM: %v\n%.2000s", err, doc)
	}
	if o := s.outputs(t); o["sbom"] != sbomPath || o["protected-task-definition"] != out {
		t.Errorf("outputs = %v", o)
	}
}

// health-check and waf-port reach task protect's options: the defender of
// the protected task maps each WAF port once and has a health check, and
// the app waits for it to be HEALTHY; without them, none of that.
func TestHealthCheckAndWAFPortInputs(t *testing.T) {
	inputs := map[string]string{
		"task-definition": "../testdata/taskdef/seeds-sample.json",
		"console-addr":    "console.example.com:8083", "agent-token": "tok",
	}
	protect := func(t *testing.T, extra map[string]string) fargatetest.Defender {
		t.Helper()
		out := filepath.Join(t.TempDir(), "tg_fargate.json")
		in := map[string]string{"protected-task-output": out}
		for k, v := range inputs {
			in[k] = v
		}
		for k, v := range extra {
			in[k] = v
		}
		s := newStep(t, in)
		if code, err := s.run(t); code != program.ExitOK || err != nil {
			t.Fatalf("code %d, err %v\n%s", code, err, s.log)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return fargatetest.ReadDefender(t, b)
	}
	const app = "twistlock-fargate-task"
	if diff := protect(t, nil).Diff(nil, false, app); diff != "" {
		t.Errorf("without the inputs: %s", diff)
	}
	if diff := protect(t, map[string]string{"health-check": "true", "waf-port": "9443,\n8443, 9443"}).Diff([]int{8443, 9443}, true, app); diff != "" {
		t.Errorf("with health-check and waf-port: %s", diff)
	}
}
