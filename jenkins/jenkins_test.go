package jenkins_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

const javaHome = "/usr/lib/jvm/java-17-openjdk-amd64"

// requireTool finds a program the test needs: missing, the test is skipped,
// unless CI is set (CI installs it with scripts/install-deps.sh), then it fails.
func requireTool(t *testing.T, path, hint string) string {
	t.Helper()
	if p, err := exec.LookPath(path); err == nil {
		return p
	}
	testenv.Skip(t, "%s not found (%s)", path, hint)
	return ""
}

// buildResult is what the harness (test/harness.groovy) reports for one build.
type buildResult struct {
	Result   string           `json:"result"`
	Error    string           `json:"error"`
	Calls    []map[string]any `json:"calls"`
	Stages   []string         `json:"stages"`
	Log      string           `json:"log"`
	RawLog   string           `json:"rawLog"`
	Archived []string         `json:"archived"`

	workspace, buildDir string
}

func (b *buildResult) calls(step string) []map[string]any {
	var out []map[string]any
	for _, c := range b.Calls {
		if c["step"] == step {
			out = append(out, c)
		}
	}
	return out
}

func (b *buildResult) archived(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.buildDir, "archive", name))
	if err != nil {
		t.Fatalf("artifact %s: %v (archived: %v)", name, err, b.Archived)
	}
	return data
}

// scenario is one Jenkins build: a Jenkinsfile in a workspace of its own.
type scenario struct {
	name        string
	jenkinsfile string            // a path under jenkins/, or a pipeline script
	files       map[string]string // workspace file -> content ("@path" copies a file)
	env         map[string]string
	check       func(t *testing.T, b *buildResult)
}

type fixture struct {
	root, bin, db, imageTar, consoleURL, consoleCA string
}

// Passwords with the characters a careless shell line or curl config breaks on.
const (
	managerPassword = `pa"ss\w$rd 'x`
	ciPassword      = `c1-"publish"\secret`
	// The seeds' step expands $TL_PASS unquoted: a plain password.
	seedsPassword  = "seeds-Passw0rd"
	agentSecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:taskguard/agent"
)

// strictPolicy blocks HIGH vulnerabilities: lodash 4.17.20 (CVE-2021-23337).
const strictPolicy = `ci:
  - name: strict
    vulnerabilities: {alertThreshold: LOW, blockThreshold: HIGH}
    compliance: {default: alert}
`

func TestSharedLibrary(t *testing.T) {
	groovy := requireTool(t, "groovy", "apt-get install groovy")
	requireTool(t, "curl", "apt-get install curl")
	readSources(t)
	f := newFixture(t)

	declarativeFiles := map[string]string{
		"fargate.json":      "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json"),
		"ci/build-image.sh": "#!/bin/sh\nset -e\nmkdir -p \"$(dirname \"$1\")\"\ncp \"$TEST_IMAGE_TAR\" \"$1\"\n",
		"ci/fake-aws/aws":   "#!/bin/sh\necho \"$@\" >> \"$WORKSPACE/aws-calls.txt\"\n",
	}
	declarativeEnv := map[string]string{
		"TASKGUARD_CACHE_DIR":       f.db,
		"TASKGUARD_SKIP_DB_UPDATE":  "true",
		"TG_CONSOLE":                strings.TrimPrefix(f.consoleURL, "https://"),
		"TG_CONSOLE_CA":             f.consoleCA,
		"TEST_IMAGE_TAR":            f.imageTar,
		"TG_AGENT_TOKEN_SECRET_ARN": agentSecretARN,
	}
	scanScript := func(extra string) string {
		return fmt.Sprintf(`node {
    stage('scan') {
        Map r = taskguardScan(input: 'image.tar', taskDefinition: 'fargate.json',
                              cacheDir: env.TASKGUARD_CACHE_DIR, skipDbUpdate: true%s)
        echo "scan result: ${r.result}"
    }
    stage('after') {
        echo 'the build went on'
    }
}
`, extra)
	}
	scanFiles := map[string]string{
		"image.tar":             "@" + f.imageTar,
		"fargate.json":          "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json"),
		"taskguard-policy.yaml": strictPolicy,
	}
	scanEnv := map[string]string{"TASKGUARD_CACHE_DIR": f.db}

	scenarios := []scenario{
		{
			name:        "seeds flow: protect through the console, archive tg_fargate.json",
			jenkinsfile: "examples/Jenkinsfile.scripted",
			files:       map[string]string{"fargate.json": "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json")},
			env:         map[string]string{"TG_CONSOLE": strings.TrimPrefix(f.consoleURL, "https://"), "TG_AGENT_TOKEN_SECRET_ARN": agentSecretARN},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				wantStages(t, b, "Clone repository: SUCCESS", "Fargate Task call: SUCCESS", "Publish Function: SUCCESS")
				wantSecretReference(t, b.archived(t, "tg_fargate.json"))
				if len(b.calls("checkout")) != 1 {
					t.Errorf("checkout calls: %v", b.calls("checkout"))
				}
				creds := b.calls("withCredentials")
				if len(creds) != 1 || !strings.Contains(fmt.Sprint(creds[0]["bindings"]), "credentialsId:taskguardDefenderManager") {
					t.Errorf("withCredentials: %v", creds)
				}
				sh := b.calls("sh")
				if len(sh) < 2 || !strings.Contains(sh[0]["script"].(string), "curl -K -") || sh[0]["exitCode"] != float64(0) {
					t.Fatalf("first sh is not the console call: %v", sh)
				}
				wantProtected(t, b.archived(t, "tg_fargate.json"), "twistlock-fargate-task", "/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh")
				if got := b.Archived; len(got) != 1 || got[0] != "tg_fargate.json" {
					t.Errorf("archived %v, want [tg_fargate.json]", got)
				}
				if !strings.Contains(b.Log, `"/var/lib/taskguard/defender"`) {
					t.Errorf("sh 'cat tg_fargate.json' did not print the protected task:\n%s", b.Log)
				}
				wantNoSecret(t, b, managerPassword)
			},
		},
		{
			name: "seeds step verbatim against the console",
			jenkinsfile: `node {
    stage('Clone repository') { checkout scm }
    stage('Fargate Task call') {
        withCredentials([usernamePassword(credentialsId: 'twistlockDefenderManager', passwordVariable: 'TL_PASS', usernameVariable: 'TL_USER')]) {
            sh 'curl -s -k -u $TL_USER:$TL_PASS https://$TL_CONSOLE/api/v1/defenders/fargate.json?consoleaddr=$TL_CONSOLE -X POST -H "Content-Type:application/json" --data-binary "@fargate.json" | jq . > tw_fargate.json'
            sh 'cat tw_fargate.json'
        }
    }
    stage('Publish Function') { archiveArtifacts artifacts: 'tw_fargate.json' }
}
`,
			files: map[string]string{"fargate.json": "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json")},
			env:   map[string]string{"TL_CONSOLE": strings.TrimPrefix(f.consoleURL, "https://")},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				wantProtected(t, b.archived(t, "tw_fargate.json"), "twistlock-fargate-task", "/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh")
			},
		},
		{
			name:        "declarative: scan, gate passes, JUnit published, protected task deployed",
			jenkinsfile: "examples/Jenkinsfile",
			files:       declarativeFiles,
			env:         declarativeEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				wantStages(t, b, "Checkout: SUCCESS", "Build image: SUCCESS", "taskguard: SUCCESS", "Deploy: SUCCESS")
				sh := findSh(t, b, "'ci'")
				for _, want := range []string{"'--input' 'build/image.tar'", "'--task' 'fargate.json'", "'--junit' 'reports/taskguard-junit.xml'", "'--protected-task-output' 'tg_fargate.json'", "'--console' '" + f.consoleURL + "'", "'--console-ca' '" + f.consoleCA + "'", "'--skip-db-update'"} {
					if !strings.Contains(sh["script"].(string), want) {
						t.Errorf("taskguard ci command lacks %s:\n%s", want, sh["script"])
					}
				}
				if strings.Contains(sh["script"].(string), "--policy") {
					t.Errorf("no taskguard-policy.yaml in the workspace, yet --policy was given:\n%s", sh["script"])
				}
				junit := b.calls("junit")
				if len(junit) != 1 || junit[0]["testResults"] != "reports/taskguard-junit.xml" || junit[0]["skipMarkingBuildUnstable"] != true {
					t.Fatalf("junit calls: %v", junit)
				}
				if junit[0]["tests"].(float64) == 0 || junit[0]["failures"] != float64(0) {
					t.Errorf("junit counted %v tests, %v failures; want some tests and no failures", junit[0]["tests"], junit[0]["failures"])
				}
				if !strings.Contains(b.Log, "taskguard: passed") || !strings.Contains(b.Log, "CVE-2021-23337") {
					t.Errorf("log lacks the result or the alerted finding:\n%s", b.Log)
				}
				wantArchived(t, b, "reports/taskguard-junit.xml", "reports/taskguard.json", "reports/taskguard.sarif", "reports/taskguard.spdx.json", "tg_fargate.json")
				wantJUnit(t, b.archived(t, "reports/taskguard-junit.xml"), 0)
				if sbom := string(b.archived(t, "reports/taskguard.spdx.json")); !strings.Contains(sbom, "SPDX-2.3") || !strings.Contains(sbom, "lodash") {
					t.Errorf("the example's SBOM is not an SPDX 2.3 document naming lodash:\n%.600s", sbom)
				}
				wantProtected(t, b.archived(t, "tg_fargate.json"), "twistlock-fargate-task", "/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh")
				if got := readWorkspace(t, b, "aws-calls.txt"); !strings.Contains(got, "ecs register-task-definition --cli-input-json file://tg_fargate.json") {
					t.Errorf("deploy stage: aws calls %q", got)
				}
				ri := b.calls("recordIssues")
				if len(ri) != 1 || fmt.Sprint(ri[0]["files"]) != "[taskguard.sarif]" {
					t.Errorf("recordIssues: %v", ri)
				}
				creds := b.calls("withCredentials")
				if len(creds) != 1 || !strings.Contains(fmt.Sprint(creds[0]["bindings"]), "credentialsId:taskguardDefenderManager") || !strings.Contains(fmt.Sprint(creds[0]["bindings"]), "passwordVariable:TASKGUARD_CONSOLE_PASSWORD") {
					t.Errorf("withCredentials: %v", creds)
				}
				wantSecretReference(t, b.archived(t, "tg_fargate.json"))
				// The console's CI rules applied (none matches: its default rule).
				if !strings.Contains(b.Log, "policy: console "+f.consoleURL) {
					t.Errorf("the console's CI rules did not gate the scan:\n%s", b.Log)
				}
				// The console protected it: the defender dials the console's host:port.
				if !strings.Contains(string(b.archived(t, "tg_fargate.json")), strings.TrimPrefix(f.consoleURL, "https://")) {
					t.Errorf("the protected task does not name the console %s", f.consoleURL)
				}
				wantNoSecret(t, b, managerPassword)
			},
		},
		{
			name:        "declarative: a blocked image fails the stage with the reason",
			jenkinsfile: "examples/Jenkinsfile",
			files:       merge(declarativeFiles, map[string]string{"taskguard-policy.yaml": strictPolicy}),
			env:         declarativeEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "Checkout: SUCCESS", "Build image: SUCCESS", "taskguard: FAILURE", "Deploy: skipped")
				const reason = "blocked by the gate: 1 blocking vulnerabilities: CVE-2021-23337 (HIGH, lodash 4.17.20)"
				if !strings.Contains(b.Error, "taskguard: build/image.tar "+reason) {
					t.Errorf("stage error %q lacks the gate's reason %q", b.Error, reason)
				}
				if sh := findSh(t, b, "'ci'"); !strings.Contains(sh["script"].(string), "'--policy' 'taskguard-policy.yaml'") {
					t.Errorf("taskguard ci: %v", sh)
				}
				junit := b.calls("junit")
				if len(junit) != 1 || junit[0]["failures"] != float64(1) {
					t.Errorf("a blocked gate must still publish its JUnit report with the failure: %v", junit)
				}
				wantArchived(t, b, "reports/taskguard-junit.xml", "reports/taskguard.json", "reports/taskguard.sarif")
				wantJUnit(t, b.archived(t, "reports/taskguard-junit.xml"), 1)
				if _, err := os.Stat(filepath.Join(b.workspace, "aws-calls.txt")); err == nil {
					t.Errorf("the Deploy stage ran after the gate blocked")
				}
				if len(b.calls("post")) != 1 || len(b.calls("recordIssues")) != 1 {
					t.Errorf("post { always } did not run: %v", b.calls("post"))
				}
			},
		},
		{
			name:        "unstableOnBlock marks the build UNSTABLE and goes on",
			jenkinsfile: scanScript(", policy: 'taskguard-policy.yaml', unstableOnBlock: true"),
			files:       scanFiles,
			env:         scanEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "UNSTABLE")
				wantStages(t, b, "scan: UNSTABLE", "after: UNSTABLE")
				u := b.calls("unstable")
				if len(u) != 1 || !strings.Contains(u[0]["message"].(string), "CVE-2021-23337") {
					t.Errorf("unstable calls: %v", u)
				}
				if !strings.Contains(b.Log, "scan result: blocked") || !strings.Contains(b.Log, "the build went on") {
					t.Errorf("log:\n%s", b.Log)
				}
				wantArchived(t, b, "taskguard-junit.xml", "taskguard-report.json")
			},
		},
		{
			name:        "failBuild false reports the block and leaves the build green",
			jenkinsfile: scanScript(", severityCutoff: 'HIGH', onlyFixed: true, failBuild: false"),
			files:       scanFiles,
			env:         scanEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				if sh := findSh(t, b, "'ci'"); !strings.Contains(sh["script"].(string), "'--severity-cutoff' 'HIGH' '--only-fixed'") || strings.Contains(sh["script"].(string), "--policy") {
					t.Errorf("taskguard ci: %s", sh["script"])
				}
				if !strings.Contains(b.Log, "scan result: blocked") || !strings.Contains(b.Log, "failBuild is false") {
					t.Errorf("log:\n%s", b.Log)
				}
			},
		},
		{
			name:        "consoleUrl alone: the console's CI rules gate the scan, and the results are published",
			jenkinsfile: strings.ReplaceAll(scanScript(", json: 'out/report.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'ci', consoleInsecure: 'true', failBuild: 'false'"), "'image.tar'", "'rules/image.tar'"),
			files:       map[string]string{"rules/image.tar": "@" + f.imageTar, "fargate.json": scanFiles["fargate.json"]},
			env:         merge(scanEnv, map[string]string{"CONSOLE_URL": f.consoleURL}),
			check: func(t *testing.T, b *buildResult) {
				ci := findSh(t, b, "'ci'")
				for _, want := range []string{"'--console' '" + f.consoleURL + "'", "'--console-insecure'"} {
					if !strings.Contains(ci["script"].(string), want) {
						t.Errorf("taskguard ci lacks %s:\n%s", want, ci["script"])
					}
				}
				if strings.Contains(ci["script"].(string), "--no-publish") || strings.Contains(ci["script"].(string), "--protected-task-output") {
					t.Errorf("taskguard ci:\n%s", ci["script"])
				}
				// The console's rule for rules/* blocks images running as root
				// (the same rule blocks in the CLI and the Action).
				if !strings.Contains(b.Log, "scan result: blocked") || !strings.Contains(b.Log, "TG-IMG-001") || !strings.Contains(b.Log, "failBuild is false") {
					t.Errorf("log:\n%s", b.Log)
				}
				wantResult(t, b, "SUCCESS")
				if !strings.Contains(b.Log, "scan results published to the console") {
					t.Errorf("log:\n%s", b.Log)
				}
				if !consoleHasScan(t, f, "rules/image.tar", "blocked") {
					t.Error("the console does not list the published scan")
				}
				creds := fmt.Sprint(b.calls("withCredentials"))
				if !strings.Contains(creds, "credentialsId:ci") || !strings.Contains(creds, "passwordVariable:TASKGUARD_CONSOLE_PASSWORD") {
					t.Errorf("withCredentials: %s", creds)
				}
				wantArchived(t, b, "out/report.json", "taskguard-junit.xml")
				wantNoSecret(t, b, ciPassword)
			},
		},
		{
			name:        "boolean parameters are parsed strictly from strings",
			jenkinsfile: scanScript(", policy: 'taskguard-policy.yaml', failBuild: 'false', onlyFixed: 'false', unstableOnBlock: 'false'") + "\nnode { stage('bad') { taskguardScan(input: 'image.tar', failBuild: 'no') } }\n",
			files:       scanFiles,
			env:         scanEnv,
			check: func(t *testing.T, b *buildResult) {
				// 'false' is false: the blocked gate only warns, and no
				// --only-fixed is passed.
				sh := findSh(t, b, "'ci'")
				if strings.Contains(sh["script"].(string), "--only-fixed") {
					t.Errorf("onlyFixed 'false' turned --only-fixed on:\n%s", sh["script"])
				}
				if !strings.Contains(b.Log, "scan result: blocked") || !strings.Contains(b.Log, "failBuild is false") {
					t.Errorf("log:\n%s", b.Log)
				}
				wantStages(t, b, "scan: SUCCESS", "after: SUCCESS", "bad: FAILURE")
				if b.Error != "taskguardScan: parameter 'failBuild' must be true or false (a boolean, or the string 'true' or 'false'), not 'no'" {
					t.Errorf("error %q", b.Error)
				}
				if n := len(b.calls("sh")); n != 1 {
					t.Errorf("%d sh calls, want 1: the bad parameter must stop the step before it runs", n)
				}
			},
		},
		{
			name:        "a switch given as null (an unset env.X) takes its default: a block still fails the build",
			jenkinsfile: scanScript(", policy: 'taskguard-policy.yaml', failBuild: env.TG_UNSET, layerCache: env.TG_UNSET, junit: env.TG_UNSET"),
			files:       scanFiles,
			env:         scanEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "scan: FAILURE")
				if !strings.Contains(b.Error, "taskguard: image.tar blocked by the gate") {
					t.Errorf("error %q: want the gate's block", b.Error)
				}
				if sh := findSh(t, b, "'ci'")["script"].(string); strings.Contains(sh, "--no-cache") || !strings.Contains(sh, "'--junit' 'taskguard-junit.xml'") {
					t.Errorf("null layerCache and junit must take their defaults (the cache on, taskguard-junit.xml):\n%s", sh)
				}
			},
		},
		{
			name:        "parallel scans with string parameters, stage post, when, and the token as an ECS secret",
			jenkinsfile: "examples/Jenkinsfile.parallel",
			files: map[string]string{
				"build/web.tar": "@" + f.imageTar, "build/worker.tar": "@" + f.imageTar,
				"fargate.json":          "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json"),
				"taskguard-policy.yaml": strictPolicy,
			},
			env: merge(declarativeEnv, map[string]string{"TG_FAIL_BUILD": "false", "TG_ONLY_FIXED": "true"}),
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				wantStages(t, b, "web: SUCCESS", "worker: SUCCESS", "Scan: SUCCESS", "Protect: SUCCESS", "Deploy: skipped (when)")
				if p := b.calls("parallel"); len(p) != 1 || fmt.Sprint(p[0]["branches"]) != "[web worker]" {
					t.Errorf("parallel: %v", p)
				}
				for _, name := range []string{"web", "worker"} {
					sh := findSh(t, b, "'build/"+name+".tar'")
					if !strings.Contains(sh["script"].(string), "'--only-fixed'") || !strings.Contains(sh["script"].(string), "'--skip-db-update'") {
						t.Errorf("%s: onlyFixed/skipDbUpdate 'true' not applied:\n%s", name, sh["script"])
					}
					if !strings.Contains(sh["script"].(string), "mktemp") {
						t.Errorf("%s: the step's scratch file is not its own:\n%s", name, sh["script"])
					}
				}
				// The strict policy blocks web (failBuild 'false': a warning);
				// worker runs under the default policy and passes.
				for _, want := range []string{"web: blocked", "failBuild is false", "worker: passed", "web: scanned", "worker: scanned"} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q:\n%s", want, b.Log)
					}
				}
				if strings.Contains(b.Log, "web: the scan stage failed") {
					t.Errorf("post { failure } ran for a stage that passed")
				}
				posts := fmt.Sprint(b.calls("post"))
				for _, want := range []string{"condition:always stage:web", "condition:always stage:worker", "condition:always stage:<nil>"} {
					if !strings.Contains(posts, want) {
						t.Errorf("post calls %s lack %s", posts, want)
					}
				}
				wantArchived(t, b, "reports/web-junit.xml", "reports/web.json", "reports/web.sarif", "reports/worker-junit.xml", "reports/worker.json", "reports/worker.sarif", "tg_fargate.json")
				wantSecretReference(t, b.archived(t, "tg_fargate.json"))
				if ri := b.calls("recordIssues"); len(ri) != 1 || !strings.Contains(fmt.Sprint(ri[0]["files"]), "web.sarif") || !strings.Contains(fmt.Sprint(ri[0]["files"]), "worker.sarif") {
					t.Errorf("recordIssues: %v", ri)
				}
				if _, err := os.Stat(filepath.Join(b.workspace, "aws-calls.txt")); err == nil {
					t.Errorf("Deploy ran although DEPLOY is not 'true'")
				}
				wantNoScratch(t, b)
				wantNoSecret(t, b, managerPassword)
			},
		},
		{
			name:        "parallel: a bad string parameter fails its branch by name, the other branch still runs",
			jenkinsfile: "examples/Jenkinsfile.parallel",
			files: map[string]string{
				"build/web.tar": "@" + f.imageTar, "build/worker.tar": "@" + f.imageTar,
				"fargate.json":          "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json"),
				"taskguard-policy.yaml": strictPolicy,
			},
			env: merge(declarativeEnv, map[string]string{"TG_FAIL_BUILD": "False", "TG_ONLY_FIXED": "false", "DEPLOY": "true"}),
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "web: FAILURE", "worker: FAILURE", "Scan: FAILURE", "Protect: skipped", "Deploy: skipped")
				const msg = "taskguardScan: parameter 'failBuild' must be true or false (a boolean, or the string 'true' or 'false'), not 'False'"
				if strings.Count(b.Error, msg) != 2 {
					t.Errorf("error %q, want the message for each branch: %s", b.Error, msg)
				}
				if !strings.Contains(b.Log, "web: the scan stage failed") || !strings.Contains(b.Log, "worker: scanned") {
					t.Errorf("stage post blocks did not run:\n%s", b.Log)
				}
				if len(b.calls("sh")) != 0 {
					t.Errorf("sh ran: %v", b.calls("sh"))
				}
			},
		},
		{
			name: "scripted parallel: every branch runs, the first failure fails the build",
			jenkinsfile: `node {
    stage('scans') {
        parallel(
            good: { Map r = taskguardScan(input: 'image.tar', cacheDir: env.TASKGUARD_CACHE_DIR, skipDbUpdate: 'true', junit: 'good-junit.xml', json: 'good.json'); echo "good: ${r.result}" },
            bad: { taskguardScan(input: 'image.tar', onlyFixed: 'yes') },
            later: { echo 'later branch ran' }
        )
    }
}`,
			files: scanFiles,
			env:   scanEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				if p := b.calls("parallel"); len(p) != 1 || fmt.Sprint(p[0]["branches"]) != "[good bad later]" {
					t.Errorf("parallel: %v", p)
				}
				if !strings.Contains(b.Log, "good: passed") || !strings.Contains(b.Log, "later branch ran") {
					t.Errorf("a branch did not run:\n%s", b.Log)
				}
				if !strings.Contains(b.Error, "parameter 'onlyFixed' must be true or false") {
					t.Errorf("error %q", b.Error)
				}
				wantArchived(t, b, "good-junit.xml", "good.json")
			},
		},
		{
			name:        "taskguard could not run: the stage fails with exit 2 and its reason",
			jenkinsfile: scanScript(", unstableOnBlock: true"),
			files:       map[string]string{"fargate.json": scanFiles["fargate.json"]},
			env:         scanEnv,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "scan: FAILURE")
				if !strings.Contains(b.Error, "taskguard could not run (exit 2) on image.tar: ") || !strings.Contains(b.Error, "image.tar") {
					t.Errorf("error %q", b.Error)
				}
				if len(b.calls("unstable")) != 0 {
					t.Errorf("an error must fail the stage even with unstableOnBlock")
				}
			},
		},
		{
			name: "unknown parameter is refused",
			jenkinsfile: `node {
    // The Action's spellings and near misses of the new options.
    for (Closure step : [{ taskguardScan(image: 'shop/web:1.4', 'fail-closed': true) },
                         { taskguardScan(image: 'shop/web:1.4', layercache: false) },
                         { taskguardProtectTask(taskDefinition: 'task.json', skipImages: 'x') }]) {
        try {
            step()
        } catch (e) {
            echo "refused: ${e.message}"
        }
    }
    taskguardScan(imge: 'shop/web:1.4')
}`,
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				if b.Error != "taskguardScan: unknown parameter 'imge' (see taskguardScan.txt for the list)" {
					t.Errorf("error %q", b.Error)
				}
				for _, want := range []string{
					"refused: taskguardScan: unknown parameter 'fail-closed' (see taskguardScan.txt for the list)",
					"refused: taskguardScan: unknown parameter 'layercache' (see taskguardScan.txt for the list)",
					"refused: taskguardProtectTask: unknown parameter 'skipImages' (see taskguardProtectTask.txt for the list)",
				} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q:\n%s", want, b.Log)
					}
				}
				if len(b.calls("sh")) != 0 {
					t.Errorf("sh ran: %v", b.calls("sh"))
				}
			},
		},
		{
			name: "protect offline with taskguard task protect",
			jenkinsfile: `node {
    taskguardProtectTask(taskDefinition: 'task.json', consoleAddr: 'console.example.com:8083',
                         agentTokenSecret: '` + agentSecretARN + `', protectedTaskOutput: 'out/protected.json',
                         consoleCa: env.CONSOLE_CA)
}`,
			files: map[string]string{"task.json": "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json")},
			env:   map[string]string{"CONSOLE_CA": f.consoleCA},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				sh := findSh(t, b, "task protect")
				if !strings.Contains(sh["script"].(string), "'--agent-token-secret' '"+agentSecretARN+"'") {
					t.Errorf("script:\n%s", sh["script"])
				}
				data := b.archived(t, "out/protected.json")
				wantProtected(t, data, "twistlock-fargate-task", "/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh")
				if !strings.Contains(string(data), agentSecretARN) || !strings.Contains(string(data), "console.example.com:8083") {
					t.Errorf("the protected task lacks the secret ARN or the console address:\n%s", data)
				}
				// consoleCa reaches the defender offline too.
				if !strings.Contains(string(data), `"TASKGUARD_CONSOLE_CA_PEM"`) || !strings.Contains(string(data), "BEGIN CERTIFICATE") {
					t.Errorf("the protected task lacks the console's certificate for the defender:\n%s", data)
				}
			},
		},
		{
			name: "protect through the console with its CA certificate; a wrong password is the console's 401",
			jenkinsfile: `node {
    stage('good') {
        taskguardProtectTask(taskDefinition: 'task.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'manager',
                             consoleCa: env.CONSOLE_CA, consoleAddr: 'console.internal:8083')
    }
    stage('bad') {
        taskguardProtectTask(taskDefinition: 'task.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'wrong',
                             consoleCa: env.CONSOLE_CA, protectedTaskOutput: 'bad.json')
    }
}`,
			files: map[string]string{"task.json": "@" + filepath.Join(f.root, "testdata/taskdef/seeds-sample.json")},
			env:   map[string]string{"CONSOLE_URL": f.consoleURL + "/", "CONSOLE_CA": f.consoleCA},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "good: SUCCESS", "bad: FAILURE")
				wantProtected(t, b.archived(t, "tg_fargate.json"), "twistlock-fargate-task", "/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh")
				if !strings.Contains(string(b.archived(t, "tg_fargate.json")), "console.internal:8083") {
					t.Errorf("consoleAddr did not reach the protected task")
				}
				if b.Error != `taskguardProtectTask: the console answered HTTP 401: { "error": "unauthorized" }` {
					t.Errorf("error %q", b.Error)
				}
				if _, err := os.Stat(filepath.Join(b.workspace, "bad.json")); err == nil {
					t.Errorf("a failed call left bad.json behind")
				}
				wantNoSecret(t, b, managerPassword)
				wantNoSecret(t, b, "not-the-password")
			},
		},
		{
			name: "publish sends the JSON report to POST /api/v1/scans",
			jenkinsfile: `node {
    stage('publish') {
        Map r = taskguardPublish(json: 'reports/r.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'ci', consoleInsecure: true)
        echo "published: ${r.published}"
    }
    stage('publish a bad report, leniently') {
        Map r = taskguardPublish(json: 'reports/bad.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'ci', consoleInsecure: true, failOnError: false)
        echo "bad published: ${r.published}"
    }
    stage('publish a bad report, strictly') {
        taskguardPublish(json: 'reports/bad.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'ci', consoleInsecure: true)
    }
}`,
			files: map[string]string{
				"reports/r.json":   publishableReport("registry.example.com/jenkins/published:1"),
				"reports/bad.json": `{"result":"passed"}`,
			},
			env: map[string]string{"CONSOLE_URL": f.consoleURL},
			check: func(t *testing.T, b *buildResult) {
				sh := findSh(t, b, "curl -K -")
				script := sh["script"].(string)
				for _, want := range []string{`--data-binary "@$TG_REPORT"`, "-X POST", `"$TG_URL"`, "set +x"} {
					if !strings.Contains(script, want) {
						t.Errorf("publish script lacks %s:\n%s", want, script)
					}
				}
				env := fmt.Sprint(b.calls("withEnv")[0]["overrides"])
				for _, want := range []string{"TG_URL=" + f.consoleURL + "/api/v1/scans", "TG_REPORT=reports/r.json", "TG_CONSOLE_INSECURE=true"} {
					if !strings.Contains(env, want) {
						t.Errorf("withEnv %s lacks %s", env, want)
					}
				}
				if !strings.Contains(b.Log, "published: true") || !strings.Contains(b.Log, "bad published: false") {
					t.Errorf("log:\n%s", b.Log)
				}
				if !consoleHasScan(t, f, "registry.example.com/jenkins/published:1", "blocked") {
					t.Error("the console does not list the published scan")
				}
				wantResult(t, b, "FAILURE")
				if !strings.HasPrefix(b.Error, "taskguardPublish: the console answered HTTP 400") || !strings.Contains(b.Error, "schema version 1") {
					t.Errorf("error %q", b.Error)
				}
				wantNoSecret(t, b, ciPassword)
			},
		},
	}

	scenarios = append(scenarios, optionScenarios(t, f)...)
	results := runHarness(t, groovy, f, scenarios)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			b := results[sc.name]
			if b == nil {
				t.Fatal("the harness reported nothing for this scenario")
			}
			sc.check(t, b)
			if t.Failed() {
				t.Logf("build log:\n%s\ncalls: %v", b.Log, b.Calls)
			}
		})
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{root: testenv.RepoRoot(t)}
	tmp := t.TempDir()
	f.bin = filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-o", f.bin+"/", "./cmd/taskguard", "./cmd/taskguard-console")
	build.Dir = f.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f.db = filepath.Join(tmp, "db")
	run(t, nil, filepath.Join(f.bin, "taskguard"), "db", "build", "--advisories", filepath.Join(testenv.SharedDir(t), "corpora", "advisories"), "--cache-dir", f.db)
	f.imageTar = writeImage(t, filepath.Join(tmp, "image.tar"))
	f.startConsole(t, filepath.Join(tmp, "console"))
	// A console CI rule for the images under rules/ only: it blocks images
	// that run as root, where the default rule only alerts.
	admin, err := api.NewClient(f.consoleURL, api.WithBasicAuth("admin", "admin-password-for-tests"), api.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddCIRule(context.Background(), policy.CIRule{Name: "jenkins-rules-only", Scope: policy.Scope{Images: []string{"rules/*"}},
		Vulnerabilities: policy.VulnRule{BlockThreshold: "CRITICAL", OnlyFixed: true},
		Compliance:      policy.ComplianceRule{Checks: map[string]policy.Action{"TG-IMG-001": policy.ActionBlock}}}); err != nil {
		t.Fatalf("add the console's CI rule: %v", err)
	}
	return f
}

// writeImage writes a docker-archive tarball: Debian 12 with lodash 4.17.20
// (CVE-2021-23337, HIGH, fixed in 4.17.21).
func writeImage(t *testing.T, path string) string {
	t.Helper()
	return writeImageFiles(t, path, "registry.example.com/shop/web:1.4", map[string]string{
		"etc/os-release":                       "ID=debian\nVERSION_ID=\"12\"\n",
		"etc/debian_version":                   "12.12\n",
		"var/lib/dpkg/status":                  "",
		"app/node_modules/lodash/package.json": `{"name":"lodash","version":"4.17.20"}`,
	})
}

// writeImageFiles writes a docker-archive tarball of one layer holding files.
func writeImageFiles(t *testing.T, path, ref string, files map[string]string) string {
	t.Helper()
	img := registryImage(t, files)
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	return path
}

var listening = regexp.MustCompile(`msg="console listening".* url=(https://\S+)`)

// startConsole runs the real taskguard-console on loopback (self-signed
// HTTPS) and adds the Jenkins users.
func (f *fixture) startConsole(t *testing.T, dataDir string) {
	t.Helper()
	console := filepath.Join(f.bin, "taskguard-console")
	cmd := exec.Command(console, "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TASKGUARD_ADMIN_PASSWORD=admin-password-for-tests")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case f.consoleURL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("taskguard-console did not log its URL within 30s")
	}
	f.consoleCA = filepath.Join(dataDir, "tls", "console.crt")
	run(t, strings.NewReader(managerPassword+"\n"), console, "--data-dir", dataDir, "user", "add", "--role", "defender-manager", "--password-stdin", "jenkins")
	run(t, strings.NewReader(seedsPassword+"\n"), console, "--data-dir", dataDir, "user", "add", "--role", "defender-manager", "--password-stdin", "seeds")
	run(t, strings.NewReader(ciPassword+"\n"), console, "--data-dir", dataDir, "user", "add", "--role", "ci", "--password-stdin", "builder")
}

func run(t *testing.T, stdin *strings.Reader, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(prog), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// publishableReport is a JSON report the console takes, of a blocked image.
func publishableReport(image string) string {
	return `{"schemaVersion":1,"tool":{"name":"taskguard","version":"devel"},"createdAt":"2026-11-23T10:00:00Z","result":"blocked","policy":{"source":"default"},"image":{"name":"` +
		image + `","kind":"registry"},"summary":{"vulnerabilities":{"total":0},"compliance":{"total":0},"blocked":0,"alerted":0,"ignored":0},"vulnerabilities":[],"compliance":[]}`
}

// runHarness runs every scenario in one groovy process (the JVM starts once).
func runHarness(t *testing.T, groovy string, f *fixture, scenarios []scenario) map[string]*buildResult {
	t.Helper()
	tmp := t.TempDir()
	type manifestScenario struct {
		Name        string                       `json:"name"`
		Jenkinsfile string                       `json:"jenkinsfile"`
		Workspace   string                       `json:"workspace"`
		BuildDir    string                       `json:"buildDir"`
		Env         map[string]string            `json:"env"`
		Credentials map[string]map[string]string `json:"credentials"`
	}
	creds := map[string]map[string]string{
		"taskguardDefenderManager": {"username": "jenkins", "password": managerPassword},
		"twistlockDefenderManager": {"username": "seeds", "password": seedsPassword},
		"manager":                  {"username": "jenkins", "password": managerPassword},
		"wrong":                    {"username": "jenkins", "password": "not-the-password"},
		"ci":                       {"username": "builder", "password": ciPassword},
	}
	var manifest struct {
		Vars      string             `json:"vars"`
		Scenarios []manifestScenario `json:"scenarios"`
	}
	manifest.Vars = filepath.Join(f.root, "jenkins", "vars")
	workspaces := map[string][2]string{}
	for i, sc := range scenarios {
		ws := filepath.Join(tmp, fmt.Sprintf("ws%d", i))
		bd := filepath.Join(tmp, fmt.Sprintf("build%d", i))
		for name, content := range sc.files {
			writeWorkspaceFile(t, filepath.Join(ws, name), content)
		}
		if err := os.MkdirAll(ws, 0o755); err != nil {
			t.Fatal(err)
		}
		jf := filepath.Join(f.root, "jenkins", sc.jenkinsfile)
		if strings.Contains(sc.jenkinsfile, "\n") || strings.HasPrefix(sc.jenkinsfile, "node") {
			jf = filepath.Join(tmp, fmt.Sprintf("Jenkinsfile%d", i))
			if err := os.WriteFile(jf, []byte(sc.jenkinsfile), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		env := map[string]string{
			"PATH": f.bin + ":" + filepath.Join(ws, "ci", "fake-aws") + ":" + os.Getenv("PATH"),
			"HOME": tmp,
		}
		for k, v := range sc.env {
			env[k] = v
		}
		manifest.Scenarios = append(manifest.Scenarios, manifestScenario{
			Name: sc.name, Jenkinsfile: jf, Workspace: ws, BuildDir: bd, Env: env, Credentials: creds,
		})
		workspaces[sc.name] = [2]string{ws, bd}
	}
	mpath, rpath := filepath.Join(tmp, "manifest.json"), filepath.Join(tmp, "results.json")
	data, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mpath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := killGroup(exec.CommandContext(ctx, groovy, filepath.Join(f.root, "jenkins", "test", "harness.groovy"), mpath, rpath))
	cmd.Env = append(os.Environ(), "JAVA_HOME="+javaHome)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("groovy harness: %v\n%s", err, out)
	}
	var results map[string]*buildResult
	raw, err := os.ReadFile(rpath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatalf("harness results: %v", err)
	}
	for name, b := range results {
		b.workspace, b.buildDir = workspaces[name][0], workspaces[name][1]
	}
	return results
}

// killGroup makes cmd's cancellation kill its whole process group: the
// JVMs a node or shell wrapper starts must not outlive a timed-out test.
func killGroup(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

func writeWorkspaceFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte(content)
	if src, ok := strings.CutPrefix(content, "@"); ok {
		var err error
		if data, err = os.ReadFile(src); err != nil {
			t.Fatal(err)
		}
	}
	mode := os.FileMode(0o644)
	if strings.HasPrefix(content, "#!") {
		mode = 0o755
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func readWorkspace(t *testing.T, b *buildResult, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.workspace, name))
	if err != nil {
		t.Errorf("workspace file %s: %v", name, err)
	}
	return string(data)
}

func findSh(t *testing.T, b *buildResult, substr string) map[string]any {
	t.Helper()
	for _, c := range b.calls("sh") {
		if strings.Contains(c["script"].(string), substr) {
			return c
		}
	}
	t.Fatalf("no sh call contains %q: %v", substr, b.calls("sh"))
	return nil
}

func wantResult(t *testing.T, b *buildResult, want string) {
	t.Helper()
	if b.Result != want {
		t.Errorf("build result %s, want %s (error: %q)", b.Result, want, b.Error)
	}
}

func wantStages(t *testing.T, b *buildResult, want ...string) {
	t.Helper()
	if strings.Join(b.Stages, "|") != strings.Join(want, "|") {
		t.Errorf("stages %q, want %q", b.Stages, want)
	}
}

func wantArchived(t *testing.T, b *buildResult, want ...string) {
	t.Helper()
	got := map[string]bool{}
	for _, a := range b.Archived {
		got[a] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("%s not archived (archived: %v)", w, b.Archived)
		}
	}
}

// wantNoSecret checks that a password reached neither a recorded step (the
// Groovy side: interpolated into an sh script) nor the unmasked build log.
func wantNoSecret(t *testing.T, b *buildResult, secret string) {
	t.Helper()
	calls, err := json.Marshal(b.Calls)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(calls), secret) || strings.Contains(b.RawLog, secret) {
		t.Errorf("the password %q leaked into the recorded calls or the log", secret)
	}
}

func wantProtected(t *testing.T, data []byte, family string, argv ...string) {
	t.Helper()
	var task struct {
		Family               string `json:"family"`
		ContainerDefinitions []struct {
			Name       string   `json:"name"`
			EntryPoint []string `json:"entryPoint"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(data, &task); err != nil {
		t.Fatalf("protected task: %v\n%s", err, data)
	}
	if task.Family != family || len(task.ContainerDefinitions) != 2 {
		t.Fatalf("protected task: family %q with %d containers, want %q with the app and the defender", task.Family, len(task.ContainerDefinitions), family)
	}
	if got := strings.Join(task.ContainerDefinitions[0].EntryPoint, " "); got != strings.Join(argv, " ") {
		t.Errorf("app container entryPoint %q, want %q", got, strings.Join(argv, " "))
	}
}

// wantSecretReference checks that the defender gets its credential as an ECS
// secret (valueFrom the ARN) and that no container holds a plain token.
func wantSecretReference(t *testing.T, data []byte) {
	t.Helper()
	var task struct {
		ContainerDefinitions []struct {
			Name        string `json:"name"`
			Environment []struct {
				Name string `json:"name"`
			} `json:"environment"`
			Secrets []struct {
				Name      string `json:"name"`
				ValueFrom string `json:"valueFrom"`
			} `json:"secrets"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(data, &task); err != nil {
		t.Fatalf("protected task: %v", err)
	}
	found := false
	for _, c := range task.ContainerDefinitions {
		for _, e := range c.Environment {
			if e.Name == "TASKGUARD_AGENT_TOKEN" {
				t.Errorf("container %s carries a plain TASKGUARD_AGENT_TOKEN", c.Name)
			}
		}
		for _, s := range c.Secrets {
			if s.Name == "TASKGUARD_AGENT_TOKEN" && s.ValueFrom == agentSecretARN {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no container holds TASKGUARD_AGENT_TOKEN as a secret from %s:\n%s", agentSecretARN, data)
	}
}

// wantNoScratch checks that the steps left no scratch file in the workspace.
func wantNoScratch(t *testing.T, b *buildResult) {
	t.Helper()
	filepath.WalkDir(b.workspace, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".stderr") || strings.HasSuffix(path, ".err") || strings.HasSuffix(path, ".response")) {
			t.Errorf("scratch file left in the workspace: %s", path)
		}
		return nil
	})
}

func wantJUnit(t *testing.T, data []byte, failures int) {
	t.Helper()
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("junit: %v", err)
	}
	if suites.Tests == 0 || suites.Failures != failures {
		t.Errorf("junit: %d tests, %d failures; want some tests and %d failures", suites.Tests, suites.Failures, failures)
	}
}

// consoleHasScan reports whether the console lists a scan of image with result.
func consoleHasScan(t *testing.T, f *fixture, image, result string) bool {
	t.Helper()
	c, err := api.NewClient(f.consoleURL, api.WithBasicAuth("builder", ciPassword), api.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.Scans(context.Background(), "", "")
	if err != nil {
		t.Fatalf("list scans: %v", err)
	}
	for _, sc := range page.Scans {
		if sc.Image == image && sc.Result == result {
			return true
		}
	}
	t.Logf("scans: %+v", page.Scans)
	return false
}
