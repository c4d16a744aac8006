package action

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/fargate/fargatetest"
	"github.com/taskguard/taskguard/internal/testenv"
)

// workflow runs the action twice from the repository itself (uses: ./): a
// passing image with its task definition protected (with a defender health
// check and WAF ports), and the same image
// blocked by severity-cutoff. The last step writes what GitHub would show.
const workflow = `name: taskguard-e2e
on: push
jobs:
  scan:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: pass
        uses: ./
        with:
          input: ${{ env.IMAGE_TAR }}
          cache-dir: ${{ env.DB_DIR }}
          cache: false
          offline: true
          task-definition: testdata/taskdef/seeds-sample.json
          protected-task-output: ${{ env.OUT_DIR }}/tg_fargate.json
          health-check: true
          waf-port: |
            9443
            8443
          junit: ${{ env.OUT_DIR }}/pass.junit.xml
          sarif: ${{ env.OUT_DIR }}/pass.sarif
      - id: block
        continue-on-error: true
        uses: ./
        with:
          input: ${{ env.IMAGE_TAR }}
          cache-dir: ${{ env.DB_DIR }}
          cache: false
          offline: true
          severity-cutoff: HIGH
          junit: ${{ env.OUT_DIR }}/block.junit.xml
      - name: record
        if: always()
        shell: bash
        run: |
          cat > "$OUT_DIR/steps.json" <<'JSON'
          {"pass": {"outcome": "${{ steps.pass.outcome }}", "outputs": ${{ toJSON(steps.pass.outputs) }}},
           "block": {"outcome": "${{ steps.block.outcome }}", "outputs": ${{ toJSON(steps.block.outputs) }}}}
          JSON
`

type stepRecord struct {
	Outcome string            `json:"outcome"`
	Outputs map[string]string `json:"outputs"`
}

// TestWorkflowWithAct runs a real workflow through nektos/act on this host
// (-P ubuntu-latest=-self-hosted: no Docker), so action.yml, install.sh (the
// Go-build path) and taskguard-action run as a GitHub runner would run them.
func TestWorkflowWithAct(t *testing.T) {
	act := findAct(t)
	if testing.Short() {
		t.Skip("-short: the act workflow builds taskguard-action")
	}
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "e2e.yml")
	if err := os.WriteFile(wf, []byte(workflow), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	home := filepath.Join(dir, "home")
	for _, d := range []string{out, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	goEnv := func(name string) string {
		b, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	cmd := exec.Command(act, "push", "-W", wf, "-P", "ubuntu-latest=-self-hosted", "--local-repository", "actions/cache@v4="+cacheStandIn(t),
		"--env", "IMAGE_TAR="+lodashImage(t), "--env", "DB_DIR="+vulnDB(t), "--env", "OUT_DIR="+out,
		"--env", "GOCACHE="+goEnv("GOCACHE"), "--env", "GOMODCACHE="+goEnv("GOMODCACHE"), "--env", "GOFLAGS=-buildvcs=false",
		"--env", "PATH="+os.Getenv("PATH"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HOME="+home)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("act: %v\n%s", err, log)
	}
	var steps map[string]stepRecord
	b, err := os.ReadFile(filepath.Join(out, "steps.json"))
	if err != nil {
		t.Fatalf("the record step wrote nothing: %v\n%s", err, log)
	}
	if err := json.Unmarshal(b, &steps); err != nil {
		t.Fatalf("steps.json: %v\n%s", err, b)
	}
	pass, block := steps["pass"], steps["block"]
	if pass.Outcome != "success" || pass.Outputs["result"] != "passed" || pass.Outputs["high"] != "1" ||
		pass.Outputs["protected-task-definition"] != filepath.Join(out, "tg_fargate.json") {
		t.Errorf("passing step: %+v", pass)
	}
	if block.Outcome != "failure" || block.Outputs["result"] != "blocked" || block.Outputs["high"] != "1" {
		t.Errorf("blocked step: %+v", block)
	}
	protected, err := os.ReadFile(filepath.Join(out, "tg_fargate.json"))
	if err != nil || !strings.Contains(string(protected), `"entry.sh"`) || !strings.Contains(string(protected), "taskguard-defender") {
		t.Errorf("protected task: %v\n%s", err, protected)
	} else if diff := fargatetest.ReadDefender(t, protected).Diff([]int{8443, 9443}, true, "twistlock-fargate-task"); diff != "" {
		t.Errorf("health-check and waf-port did not reach the protected task: %s", diff)
	}
	for _, f := range []string{"pass.junit.xml", "pass.sarif", "block.junit.xml"} {
		if !fileExists(filepath.Join(out, f)) {
			t.Errorf("report %s was not written", f)
		}
	}
	s := string(log)
	for _, want := range []string{
		"Summary - ## ✅ taskguard", "Summary - ## ❌ taskguard",
		"::error file=Dockerfile,title=HIGH CVE-2021-23337 in lodash::",
		"taskguard: building taskguard-action from source",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("act log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("act log:\n%s", log)
	}
}

// cacheStandIn is what act finds for actions/cache@v4: act reads every
// remote action of a composite action, even of a step its "if" skips, and
// this host has no route to GitHub. The tests run with cache: false; a
// stand-in that ran would fail the step, and the test with it.
func cacheStandIn(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"restore", "save"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		yml := "name: actions/cache stand-in\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      run: |\n        echo '::error::the actions/cache stand-in ran, but cache is false in this test'\n        exit 1\n"
		if err := os.WriteFile(filepath.Join(dir, sub, "action.yml"), []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// findAct finds nektos/act: missing, the test skips, or fails under CI.
func findAct(t *testing.T) string {
	t.Helper()
	act, err := exec.LookPath("act")
	if err == nil {
		return act
	}
	if gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", "act"); fileExists(gobin) {
		return gobin
	}
	testenv.Skip(t, "act is not installed (scripts/install-deps.sh: go install github.com/nektos/act@v0.2.89)")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
