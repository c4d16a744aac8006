package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/report"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// ciFixture is one DB built from the real advisories and one image in a
// loopback registry: Debian 12 with lodash 4.17.20 (CVE-2021-23337, HIGH,
// fixed in 4.17.21), no USER, no HEALTHCHECK.
type ciFixture struct {
	db, ref, dir string
}

func newCIFixture(t *testing.T) ciFixture {
	t.Helper()
	ref := startRegistry(t) + "/shop/web:1.4"
	push(t, ref, lodashImage(t))
	return ciFixture{db: buildDB(t), ref: ref, dir: t.TempDir()}
}

// lodashImage is the ci fixture's image: Debian 12 with lodash 4.17.20.
func lodashImage(t *testing.T) v1.Image {
	t.Helper()
	layer := layerFromFiles(t, map[string][]byte{
		"etc/os-release":                       []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"etc/debian_version":                   []byte("12.12\n"),
		"var/lib/dpkg/status":                  []byte(""),
		"app/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.20"}`),
	})
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (f ciFixture) file(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f ciFixture) args(extra ...string) []string {
	return append([]string{"ci", "--image", f.ref, "--cache-dir", f.db, "--skip-db-update", "--format", "none"}, extra...)
}

const blockHigh = `ci:
  - name: strict
    scope: {images: ["*/shop/*"]}
    vulnerabilities: {alertThreshold: LOW, blockThreshold: HIGH}
    compliance: {default: alert}
`

func TestCIGate(t *testing.T) {
	f := newCIFixture(t)
	task := "../testdata/taskdef/seeds-sample.json"

	t.Run("blocked by a HIGH vulnerability", func(t *testing.T) {
		pol := f.file(t, "strict.yaml", blockHigh)
		junitPath, sarifPath, jsonPath, mdPath := filepath.Join(f.dir, "r/junit.xml"), filepath.Join(f.dir, "r.sarif"), filepath.Join(f.dir, "r.json"), filepath.Join(f.dir, "summary.md")
		protected := filepath.Join(f.dir, "tg_fargate.json")
		_, errOut, code := run(t, f.args("--policy", pol, "--task", task, "--junit", junitPath, "--sarif", sarifPath, "--json", jsonPath, "--markdown", mdPath, "--protected-task-output", protected)...)
		if code != program.ExitBlocked {
			t.Fatalf("code %d, want 1: %s", code, errOut)
		}
		for _, want := range []string{"policy: file " + pol + " (rule strict)", "blocked by the gate: 1 blocking vulnerabilities: CVE-2021-23337 (HIGH, lodash 4.17.20)"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		var rep report.Report
		readJSON(t, jsonPath, &rep)
		if rep.Result != report.ResultBlocked || rep.Summary.Blocked != 1 || rep.Task == nil || rep.Task.Family != "twistlock-fargate-task" {
			t.Errorf("report: result %s summary %+v task %+v", rep.Result, rep.Summary, rep.Task)
		}
		var junit struct {
			Failures int `xml:"failures,attr"`
			Suites   []struct {
				Name string `xml:"name,attr"`
			} `xml:"testsuite"`
		}
		b, err := os.ReadFile(junitPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, &junit); err != nil || junit.Failures != 1 || len(junit.Suites) != 3 {
			t.Errorf("junit: %v failures=%d suites=%d", err, junit.Failures, len(junit.Suites))
		}
		var sarif map[string]any
		readJSON(t, sarifPath, &sarif)
		if sarif["version"] != "2.1.0" {
			t.Errorf("sarif version %v", sarif["version"])
		}
		md, _ := os.ReadFile(mdPath)
		if !strings.Contains(string(md), "❌ taskguard") || !strings.Contains(string(md), "CVE-2021-23337") {
			t.Errorf("markdown:\n%s", md)
		}
		if _, err := os.Stat(protected); !os.IsNotExist(err) {
			t.Errorf("a blocked run protected the task definition (stat: %v)", err)
		}
	})

	t.Run("passes under the default policy and protects the task", func(t *testing.T) {
		protected := filepath.Join(f.dir, "protected.json")
		out, errOut, code := run(t, "ci", "--image", f.ref, "--cache-dir", f.db, "--skip-db-update", "--task", task, "--protected-task-output", protected)
		if code != program.ExitOK {
			t.Fatalf("code %d: %s", code, errOut)
		}
		if !strings.Contains(errOut, "policy: default") || !strings.Contains(out, "PASSED") || !strings.Contains(out, "CVE-2021-23337") {
			t.Errorf("stdout:\n%s\nstderr:\n%s", out, errOut)
		}
		b, err := os.ReadFile(protected)
		if err != nil || !strings.Contains(string(b), `"/var/lib/taskguard/defender"`) {
			t.Errorf("protected task: %v\n%s", err, b)
		}
	})

	t.Run("ignore file accepts the finding until it expires", func(t *testing.T) {
		pol := f.file(t, "strict.yaml", blockHigh)
		valid := f.file(t, "valid.ignore", "ignore:\n  - id: CVE-2021-23337\n    package: lodash\n    reason: template() is never called with user input\n    expires: 2999-12-31\n")
		expired := f.file(t, "expired.ignore", "ignore:\n  - id: CVE-2021-23337\n    reason: accepted for the launch\n    expires: 2024-01-31\n")
		jsonPath := filepath.Join(f.dir, "ignored.json")
		if _, errOut, code := run(t, f.args("--policy", pol, "--ignore-file", valid, "--json", jsonPath)...); code != program.ExitOK {
			t.Fatalf("valid exception: code %d: %s", code, errOut)
		}
		var rep report.Report
		readJSON(t, jsonPath, &rep)
		if len(rep.Vulnerabilities) != 1 || rep.Vulnerabilities[0].Verdict.Action != report.ActionIgnore || !strings.Contains(rep.Vulnerabilities[0].Verdict.Reason, "never called") {
			t.Errorf("verdicts: %+v", rep.Vulnerabilities)
		}
		// The report says the finding was accepted, by whom and until when,
		// and counts it apart from the blocked and alerted ones.
		if a := rep.Vulnerabilities[0].Verdict.Accepted; a == nil || a.Source != report.AcceptedByIgnoreFile || a.Location != valid || a.Expires != "2999-12-31" {
			t.Errorf("acceptance: %+v", a)
		}
		if s := rep.Summary; s.Accepted != 1 || s.VulnerabilitiesAccepted.High != 1 || s.VulnerabilitiesBlocked.Total != 0 || s.Vulnerabilities.High != 1 {
			t.Errorf("summary: %+v", s)
		}
		_, errOut, code := run(t, f.args("--policy", pol, "--ignore-file", expired, "--json", jsonPath)...)
		if code != program.ExitBlocked {
			t.Fatalf("expired exception: code %d: %s", code, errOut)
		}
		rep = report.Report{}
		readJSON(t, jsonPath, &rep)
		if len(rep.ExpiredExceptions) != 1 || rep.ExpiredExceptions[0].Expires != "2024-01-31" {
			t.Errorf("expired exceptions: %+v", rep.ExpiredExceptions)
		}
	})

	t.Run("grace days count from the advisory's publication", func(t *testing.T) {
		// A Go binary with golang.org/x/text v0.3.5: its Go advisories carry
		// publication dates from 2021 on (the npm corpus records carry none).
		bin, err := os.ReadFile(scantest.GoBinary(t, "golang.org/x/text", "v0.3.5", "golang.org/x/text/language"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, layerFromFiles(t, map[string][]byte{"app/vulnapp": bin}))
		if err != nil {
			t.Fatal(err)
		}
		ref := strings.TrimSuffix(f.ref, "/shop/web:1.4") + "/shop/goapp:1"
		push(t, ref, img)
		args := func(pol string, extra ...string) []string {
			return append([]string{"ci", "--image", ref, "--cache-dir", f.db, "--skip-db-update", "--format", "none", "--policy", pol}, extra...)
		}
		// GO-2021-0113 (CVE-2021-38561) was published in October 2021; the
		// records of CVE-2022-32149 and CVE-2026-56852 carry no date, so no
		// grace applies to them.
		verdicts := func(pol string) map[string]report.Verdict {
			jsonPath := filepath.Join(f.dir, "grace.json")
			if _, errOut, code := run(t, args(pol, "--json", jsonPath)...); code != program.ExitBlocked {
				t.Fatalf("code %d, want 1 (undated findings block): %s", code, errOut)
			}
			var rep report.Report
			readJSON(t, jsonPath, &rep)
			out := map[string]report.Verdict{}
			for _, v := range rep.Vulnerabilities {
				out[v.VulnerabilityID] = v.Verdict
				if (v.PublishedDate != nil) != (v.VulnerabilityID == "CVE-2021-38561") {
					t.Errorf("%s: published %v", v.VulnerabilityID, v.PublishedDate)
				}
			}
			return out
		}
		long := verdicts(f.file(t, "grace-long.yaml", "ci:\n  - name: grace\n    vulnerabilities: {blockThreshold: UNKNOWN, graceDays: 36500}\n"))
		if v := long["CVE-2021-38561"]; v.Action != report.ActionAlert || !strings.Contains(v.Reason, "(grace 36500 days)") {
			t.Errorf("dated finding within grace: %+v", v)
		}
		if v := long["CVE-2022-32149"]; v.Action != report.ActionBlock {
			t.Errorf("undated finding: %+v", v)
		}
		short := verdicts(f.file(t, "grace-short.yaml", "ci:\n  - name: grace\n    vulnerabilities: {blockThreshold: UNKNOWN, graceDays: 30}\n"))
		if v := short["CVE-2021-38561"]; v.Action != report.ActionBlock {
			t.Errorf("dated finding past grace: %+v", v)
		}
	})

	t.Run("compliance rule blocks", func(t *testing.T) {
		pol := f.file(t, "norooot.yaml", "ci:\n  - name: no-root\n    vulnerabilities: {blockThreshold: CRITICAL}\n    compliance: {checks: {TG-IMG-001: block}}\n")
		_, errOut, code := run(t, f.args("--policy", pol)...)
		if code != program.ExitBlocked || !strings.Contains(errOut, "TG-IMG-001 Image runs as root (image)") {
			t.Errorf("code %d: %s", code, errOut)
		}
	})

	t.Run("custom check from the policy blocks", func(t *testing.T) {
		pol := f.file(t, "custom.yaml", `ci:
  - name: own-checks
    vulnerabilities: {blockThreshold: CRITICAL}
    compliance:
      checks: {ACME-NODE-1: block}
      custom:
        - {id: ACME-NODE-1, title: No node_modules in the image root, severity: high, fileAbsent: /app/node_modules/*/package.json,
           remediation: "Bundle the app instead of shipping node_modules"}
        - {id: ACME-HC, title: Health check script, severity: low, fileExists: /app/healthcheck.sh}
`)
		jsonPath := filepath.Join(f.dir, "custom.json")
		_, errOut, code := run(t, f.args("--policy", pol, "--json", jsonPath)...)
		if code != program.ExitBlocked || !strings.Contains(errOut, "ACME-NODE-1 No node_modules in the image root (/app/node_modules/lodash/package.json)") {
			t.Fatalf("code %d: %s", code, errOut)
		}
		var rep report.Report
		readJSON(t, jsonPath, &rep)
		verdicts := map[string]string{}
		for _, c := range rep.Compliance {
			verdicts[c.CheckID] = c.Verdict.Action
		}
		if verdicts["ACME-NODE-1"] != report.ActionBlock || verdicts["ACME-HC"] != report.ActionAlert {
			t.Errorf("verdicts = %v", verdicts)
		}
	})

	t.Run("task definition only", func(t *testing.T) {
		pol := f.file(t, "task.yaml", "ci:\n  - name: tasks\n    compliance: {checks: {TG-TASK-004: block}}\n")
		_, errOut, code := run(t, "ci", "--task", task, "--policy", pol, "--format", "none")
		if code != program.ExitBlocked || !strings.Contains(errOut, "TG-TASK-004 Root filesystem is writable (container twistlock-fargate-task)") {
			t.Errorf("code %d: %s", code, errOut)
		}
	})

	t.Run("a failed protect still writes every report", func(t *testing.T) {
		dir := t.TempDir()
		paths := map[string]string{"--junit": filepath.Join(dir, "junit.xml"), "--sarif": filepath.Join(dir, "r.sarif"), "--json": filepath.Join(dir, "r.json"), "--markdown": filepath.Join(dir, "summary.md")}
		args := f.args("--task", "../testdata/taskdef/no-entrypoint.json", "--protected-task-output", filepath.Join(dir, "protected.json"))
		for flag, p := range paths {
			args = append(args, flag, p)
		}
		_, errOut, code := run(t, args...)
		if code != program.ExitError || !strings.Contains(errOut, `container "reports" has no entryPoint`) {
			t.Fatalf("code %d, want 2 with the protect error: %s", code, errOut)
		}
		for flag, p := range paths {
			if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
				t.Errorf("%s report not written: %v", flag, err)
			}
		}
		var rep report.Report
		readJSON(t, paths["--json"], &rep)
		if rep.ProtectedTask != "" || !strings.Contains(strings.Join(rep.Warnings, "\n"), "the task definition was not protected: protect") {
			t.Errorf("report: protected %q, warnings %q", rep.ProtectedTask, rep.Warnings)
		}
		if _, err := os.Stat(filepath.Join(dir, "protected.json")); !os.IsNotExist(err) {
			t.Errorf("a protected task was written (stat: %v)", err)
		}
	})

	t.Run("errors exit 2", func(t *testing.T) {
		badPolicy := f.file(t, "bad.yaml", "ci:\n  - name: x\n    vulnerabilities: {blockThreshold: SEVERE}\n")
		badIgnore := f.file(t, "bad.ignore", "ignore:\n  - id: CVE-1\n")
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"nothing to check", []string{"ci", "--format", "none"}, "nothing to check"},
			{"missing policy", f.args("--policy", filepath.Join(f.dir, "nope.yaml")), "--policy: open"},
			{"bad policy", f.args("--policy", badPolicy), `ci[0].vulnerabilities.blockThreshold: unknown severity "SEVERE"`},
			{"bad ignore file", f.args("--ignore-file", badIgnore), "ignore[0].reason: is required"},
			{"missing image", []string{"ci", "--image", f.ref + "-gone", "--cache-dir", f.db, "--skip-db-update"}, "fetch image"},
			{"bad task", f.args("--task", "../testdata/taskdef/no-entrypoint.json", "--protected-task-output", filepath.Join(f.dir, "x.json")), `container "reports" has no entryPoint`},
			{"bad format", f.args("--format", "xml"), "want table, json or none"},
			{"both sources", []string{"ci", "--image", f.ref, "--input", "x.tar"}, "either --image or --input"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, errOut, code := run(t, tt.args...)
				if code != program.ExitError || !strings.Contains(errOut, tt.want) {
					t.Errorf("code %d, stderr %q; want 2 and %q", code, errOut, tt.want)
				}
			})
		}
	})
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// With --console, the task is protected by a real console over HTTPS, which
// mints the defender's agent credential.
func TestCIProtectThroughConsole(t *testing.T) {
	c, err := console.Start(context.Background(), console.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminUser: "admin", AdminPassword: "correct-horse-battery"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	caFile := filepath.Join(t.TempDir(), "console.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tg_fargate.json")
	args := []string{"ci", "--task", "../testdata/taskdef/seeds-sample.json", "--format", "none", "--console", c.URL(), "--console-ca", caFile, "--protected-task-output", out}

	t.Setenv(EnvConsoleUser, "admin")
	t.Setenv(EnvConsolePassword, "wrong-password")
	if _, errOut, code := run(t, args...); code != program.ExitError || !strings.Contains(errOut, "401") {
		t.Fatalf("wrong password: code %d: %s", code, errOut)
	}
	t.Setenv(EnvConsolePassword, "correct-horse-battery")
	if _, errOut, code := run(t, args...); code != program.ExitOK {
		t.Fatalf("code %d: %s", code, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(c.URL(), "https://")
	for _, want := range []string{`"/var/lib/taskguard/defender"`, `"name": "taskguard-defender"`, `"value": "https://` + host + `"`, `"name": "TASKGUARD_AGENT_TOKEN"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("protected task lacks %s:\n%s", want, b)
		}
	}
	// The run used the console's CI rules (none yet: the default rule) and
	// published its results.
	admin, err := api.NewClient(c.URL(), api.WithBasicAuth("admin", "correct-horse-battery"), api.WithTLSConfig(&tls.Config{RootCAs: certPool(c)}))
	if err != nil {
		t.Fatal(err)
	}
	page, err := admin.Scans(context.Background(), "", "")
	if err != nil || len(page.Scans) != 1 || page.Scans[0].TaskFamily != "twistlock-fargate-task" || page.Scans[0].Result != "passed" {
		t.Fatalf("scans on the console: %+v (%v)", page.Scans, err)
	}

	// A CI rule set on the console blocks the next run, which still publishes.
	if _, err := admin.AddCIRule(context.Background(), policy.CIRule{Name: "strict-tasks", Compliance: policy.ComplianceRule{Checks: map[string]policy.Action{"TG-TASK-004": policy.ActionBlock}}}); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, args...)
	if code != program.ExitBlocked || !strings.Contains(errOut, "policy: console "+c.URL()) || !strings.Contains(errOut, "(rule strict-tasks)") || !strings.Contains(errOut, "scan results published") {
		t.Fatalf("console rule: code %d: %s", code, errOut)
	}
	if page, err = admin.Scans(context.Background(), "", ""); err != nil || len(page.Scans) != 2 || page.Scans[0].Result != "blocked" {
		t.Fatalf("scans on the console: %+v (%v)", page.Scans, err)
	}

	t.Setenv(EnvConsolePassword, "")
	if _, errOut, code := run(t, args...); code != program.ExitError || !strings.Contains(errOut, "no credentials") {
		t.Fatalf("no credentials: code %d: %s", code, errOut)
	}
}

func certPool(c *console.Console) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.Certificate())
	return pool
}
