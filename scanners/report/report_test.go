package report

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/compliance"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/vuln"

	"github.com/taskguard/taskguard/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

func fixture() *Report {
	created := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	r := &Report{
		SchemaVersion: SchemaVersion,
		Tool:          scan.Tool{Name: "taskguard", Version: "v0.1.0"},
		CreatedAt:     created,
		Policy:        PolicySource{Source: "file", Location: "taskguard-policy.yaml", Rule: "default"},
		Image:         &scan.Artifact{Name: "registry.example.com/shop/web:1.4", Kind: "registry", Digest: "sha256:4f5e"},
		DB:            &scan.DBInfo{SchemaVersion: 2, UpdatedAt: created.Add(-30 * time.Hour)},
		Task:          &Task{Path: "deploy/task.json", Family: "shop-web"},
		Vulnerabilities: []Vulnerability{
			{Finding: vuln.Finding{VulnerabilityID: "CVE-2024-5535", PkgType: "dpkg", PkgName: "libssl3", InstalledVersion: "3.0.11-1~deb12u2", FixedVersion: "3.0.15-1~deb12u1", Severity: "LOW", Title: "openssl: SSL_select_next_proto buffer overread", PrimaryURL: "https://security-tracker.debian.org/tracker/CVE-2024-5535", Location: analyzer.Location{Path: "var/lib/dpkg/status"}},
				Verdict: Verdict{Action: ActionIgnore, Reason: "LOW below the thresholds"}},
			{Finding: vuln.Finding{VulnerabilityID: "GHSA-35jh-r3h4-6jhm", PkgType: "npm", PkgName: "lodash", InstalledVersion: "4.17.15", FixedVersion: "4.17.21", Severity: "HIGH", Title: "Command Injection in lodash | <script>alert(1)</script>", PrimaryURL: "https://github.com/advisories/GHSA-35jh-r3h4-6jhm", Location: analyzer.Location{Path: "app/node_modules/lodash/package.json"}},
				Verdict: Verdict{Action: ActionBlock, Reason: "HIGH at or above the block threshold HIGH"}},
			{Finding: vuln.Finding{VulnerabilityID: "GO-2021-0061", PkgType: "gobinary", PkgName: "gopkg.in/yaml.v2", InstalledVersion: "v2.2.7", FixedVersion: "v2.2.8", Severity: "MEDIUM", Title: "Denial of service in gopkg.in/yaml.v2", Location: analyzer.Location{Path: "usr/local/bin/app"}},
				Verdict: Verdict{Action: ActionAlert, Reason: "MEDIUM at or above the alert threshold MEDIUM"}},
			{Finding: vuln.Finding{VulnerabilityID: "CVE-2023-44487", PkgType: "gobinary", PkgName: "golang.org/x/net", InstalledVersion: "v0.7.0", FixedVersion: "v0.17.0", Severity: "HIGH", Title: "HTTP/2 rapid reset", Location: analyzer.Location{Path: "usr/local/bin/app"}},
				Verdict: Verdict{Action: ActionIgnore, Reason: "exception: HTTP/2 is not served", Accepted: &Acceptance{Source: AcceptedByIgnoreFile, Location: ".taskguardignore", Reason: "HTTP/2 is not served", Expires: "2027-03-31"}}},
		},
		Compliance: []ComplianceResult{
			{Finding: compliance.Finding{CheckID: "TG-IMG-001", Family: "image", Title: "Image runs as root", Severity: "MEDIUM", Target: "image", Message: "the image has no USER, so it runs as root", Remediation: "Add a USER instruction."},
				Verdict: Verdict{Action: ActionAlert, Reason: "default compliance action alert"}},
			{Finding: compliance.Finding{CheckID: "TG-TASK-005", Family: "task", Title: "Secret in plain environment", Severity: "HIGH", Target: "container web", Message: "environment variable DB_PASSWORD holds a value under a credential-like name", Remediation: "Use secrets."},
				Verdict: Verdict{Action: ActionBlock, Reason: "rule sets TG-TASK-005 to block"}},
		},
		ExpiredExceptions: []Exception{{ID: "CVE-2022-0001", Reason: "was accepted for Q3", Expires: "2026-10-01"}},
	}
	r.Finish()
	r.BlockReasons = []string{"1 vulnerability and 1 compliance finding at or above the policy's block thresholds"}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update after checking):\n%s", path, got)
	}
}

func TestWritersGolden(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		write func(*bytes.Buffer, *Report) error
	}{
		{"report.json", func(b *bytes.Buffer, r *Report) error { return WriteJSON(ctx, b, r) }},
		{"report.junit.xml", func(b *bytes.Buffer, r *Report) error { return WriteJUnit(ctx, b, r) }},
		{"report.sarif", func(b *bytes.Buffer, r *Report) error { return WriteSARIF(ctx, b, r, SARIFOptions{}) }},
		{"report.md", func(b *bytes.Buffer, r *Report) error { return WriteMarkdown(ctx, b, r, MarkdownOptions{}) }},
		{"report.txt", func(b *bytes.Buffer, r *Report) error { return WriteTable(ctx, b, r, TableOptions{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b, fixture()); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestFinishOrdersAndCounts(t *testing.T) {
	r := fixture()
	if r.Result != ResultBlocked {
		t.Errorf("result = %s", r.Result)
	}
	if r.Vulnerabilities[0].VulnerabilityID != "GHSA-35jh-r3h4-6jhm" || r.Vulnerabilities[1].Verdict.Action != ActionAlert {
		t.Errorf("blocking findings are not first: %+v", r.Vulnerabilities)
	}
	s := r.Summary
	if s.Blocked != 2 || s.Alerted != 2 || s.Ignored != 2 || s.Vulnerabilities.High != 2 || s.Vulnerabilities.Total != 4 || s.Compliance.Total != 2 {
		t.Errorf("summary = %+v", s)
	}
	// The accepted HIGH is counted as found, as accepted, and not as blocked.
	if s.Accepted != 1 || s.VulnerabilitiesAccepted.High != 1 || s.VulnerabilitiesAccepted.Total != 1 ||
		s.VulnerabilitiesBlocked.High != 1 || s.VulnerabilitiesAlerted.Medium != 1 || s.VulnerabilitiesBlocked.Total != 1 {
		t.Errorf("verdict counts = %+v", s)
	}
	passing := &Report{Vulnerabilities: []Vulnerability{{Finding: vuln.Finding{Severity: "CRITICAL"}, Verdict: Verdict{Action: ActionAlert, Reason: "x"}}}}
	passing.Finish()
	if passing.Result != ResultPassed || passing.Compliance == nil {
		t.Errorf("alerts only: %+v", passing)
	}
}

// The JUnit report is valid against the JUnit schema Jenkins reads, and its
// counts say what the gate decided.
func TestJUnitValid(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(context.Background(), &b, fixture()); err != nil {
		t.Fatal(err)
	}
	xmllint := requireTool(t, "xmllint", "libxml2-utils")
	file := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/jenkins-junit.xsd", file).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	}
	// A report the schema must refuse, so the check itself can fail.
	bad := filepath.Join(t.TempDir(), "bad.xml")
	os.WriteFile(bad, []byte(`<testsuites><testsuite tests="1"><testcase/></testsuite></testsuites>`), 0o644)
	if out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/jenkins-junit.xsd", bad).CombinedOutput(); err == nil {
		t.Fatalf("schema accepted a suite without a name:\n%s", out)
	}

	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
			Props []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"properties>property"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 6 || doc.Failures != 2 || doc.Skipped != 1 || len(doc.Suites) != 3 {
		t.Errorf("tests=%d failures=%d skipped=%d suites=%d", doc.Tests, doc.Failures, doc.Skipped, len(doc.Suites))
	}
	props := map[string]string{}
	for _, p := range doc.Suites[0].Props {
		props[p.Name] = p.Value
	}
	if props["image.digest"] != "sha256:4f5e" || props["db.ageHours"] != "30" {
		t.Errorf("properties = %v", props)
	}
}

// requireTool finds a program the tests need. CI installs it, so there a
// missing tool fails the test; elsewhere the test is skipped.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.Skip(t, "%s is not installed (apt-get install %s)", name, pkg)
	}
	return path
}

// The SARIF report passes Microsoft's SARIF Multitool validation, with
// GitHub code scanning's own rules (GH*), without errors.
func TestSARIFValid(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSARIF(context.Background(), &b, fixture(), SARIFOptions{}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version string `json:"version"`
		Schema  string `json:"$schema"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID         string         `json:"id"`
						Properties map[string]any `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID       string                `json:"ruleId"`
				Level        string                `json:"level"`
				Locations    []json.RawMessage     `json:"locations"`
				Message      struct{ Text string } `json:"message"`
				Suppressions []struct {
					Kind, Status, Justification string
				} `json:"suppressions"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || len(doc.Runs) != 1 || len(doc.Runs[0].Results) != 6 || len(doc.Runs[0].Tool.Driver.Rules) != 6 {
		t.Fatalf("unexpected SARIF shape: %s", b.String()[:400])
	}
	first := doc.Runs[0].Results[0]
	if first.Level != "error" || len(first.Locations) != 1 {
		t.Errorf("first result %+v: blocking findings come first, as errors, with one location", first)
	}
	levels := map[string]string{}
	for _, r := range doc.Runs[0].Results {
		levels[r.RuleID] = r.Level
	}
	if levels["CVE-2024-5535"] != "note" || levels["GO-2021-0061"] != "warning" || levels["TG-TASK-005"] != "error" {
		t.Errorf("levels = %v", levels)
	}

	// The accepted finding is suppressed externally, with the ignore file's
	// reason and expiry; nothing else is suppressed.
	for _, r := range doc.Runs[0].Results {
		switch {
		case r.RuleID == "CVE-2023-44487":
			if len(r.Suppressions) != 1 || r.Suppressions[0].Kind != "external" || r.Suppressions[0].Status != "accepted" ||
				!strings.Contains(r.Suppressions[0].Justification, "HTTP/2 is not served") || !strings.Contains(r.Suppressions[0].Justification, "expires 2027-03-31") ||
				!strings.Contains(r.Message.Text, "Gate: accepted") {
				t.Errorf("accepted result %+v: want one external suppression with the reason and expiry", r)
			}
		case len(r.Suppressions) != 0:
			t.Errorf("%s is suppressed but was not accepted: %+v", r.RuleID, r.Suppressions)
		}
	}
	validateSARIF(t, b.Bytes())

	// A finding accepted by a policy exception points at the policy rule.
	r := fixture()
	r.Compliance[1].Verdict = Verdict{Action: ActionIgnore, Reason: "exception: secrets move next sprint",
		Accepted: &Acceptance{Source: AcceptedByPolicy, Location: "shop", Reason: "secrets move next sprint"}}
	r.Finish()
	b.Reset()
	if err := WriteSARIF(context.Background(), &b, r, SARIFOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"fullyQualifiedName": "policy/shop"`) || !strings.Contains(b.String(), "accepted in the policy shop; does not expire") {
		t.Errorf("policy acceptance not in the suppression:\n%s", b.String())
	}
	validateSARIF(t, b.Bytes())
}

// validateSARIF runs Microsoft's SARIF Multitool on doc with GitHub's rules.
func validateSARIF(t *testing.T, doc []byte) {
	t.Helper()
	tool := os.Getenv("TASKGUARD_SARIF_MULTITOOL")
	if tool == "" {
		testenv.Skip(t, "TASKGUARD_SARIF_MULTITOOL is not set to the Sarif.Multitool binary (scripts/install-deps.sh installs @microsoft/sarif-multitool)")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "taskguard.sarif")
	if err := os.WriteFile(in, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "validate", in, "-o", filepath.Join(dir, "validation.sarif"), "--rule-kind", "Gh;Sarif", "--level", "Error").CombinedOutput()
	if err != nil {
		t.Fatalf("Sarif.Multitool: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ": error ") {
			t.Errorf("SARIF validation: %s", line)
		}
	}
	if !strings.Contains(string(out), "Analysis completed successfully") {
		t.Errorf("Sarif.Multitool did not complete:\n%s", out)
	}
}

func TestSARIFCap(t *testing.T) {
	r := &Report{}
	for i := 0; i < 50; i++ {
		sev := "LOW"
		if i == 42 {
			sev = "CRITICAL"
		}
		r.Vulnerabilities = append(r.Vulnerabilities, Vulnerability{Finding: vuln.Finding{VulnerabilityID: fmt.Sprintf("CVE-2024-%04d", i), Severity: sev}, Verdict: Verdict{Action: ActionIgnore}})
	}
	r.Finish()
	var b bytes.Buffer
	if err := WriteSARIF(context.Background(), &b, r, SARIFOptions{MaxResults: 10}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Runs []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	res := doc.Runs[0].Results
	if len(res) != 10 || res[0].RuleID != "CVE-2024-0042" {
		t.Errorf("capped results: %d, first %v", len(res), res[0])
	}
}

// Hostile titles do not break the Markdown tables or inject HTML.
func TestMarkdownEscapes(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(context.Background(), &b, fixture(), MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if strings.Contains(s, "<script>") {
		t.Error("markdown contains raw <script>")
	}
	if !strings.Contains(s, "## ❌ taskguard: `registry.example.com/shop/web:1.4` blocked") || !strings.Contains(s, "### Blocking findings") || !strings.Contains(s, "<details><summary>Other vulnerabilities (3)</summary>") {
		t.Errorf("markdown:\n%s", s)
	}
	if strings.Index(s, "GHSA-35jh-r3h4-6jhm") > strings.Index(s, "CVE-2024-5535") {
		t.Error("blocking finding is not listed first")
	}
}

func TestTableColor(t *testing.T) {
	var plain, color bytes.Buffer
	r := fixture()
	if err := WriteTable(context.Background(), &plain, r, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(context.Background(), &color, r, TableOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(color.String(), "\x1b[1;31mBLOCKED\x1b[0m") {
		t.Errorf("colour handling wrong:\n%q", color.String())
	}
	if strings.Contains(plain.String(), "CVE-2024-5535") {
		t.Error("ignored findings are listed without All")
	}
}
