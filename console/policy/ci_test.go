package policy

import (
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDecideVulnerability(t *testing.T) {
	now := day("2026-11-23").Add(15 * time.Hour)
	rule := &CIRule{Name: "default", Vulnerabilities: VulnRule{
		AlertThreshold: "medium", BlockThreshold: "HIGH", GraceDays: 30,
		Exceptions: []Exception{
			{ID: "CVE-2023-0001", Reason: "not reachable", Expires: Date{day("2026-11-23")}},
			{ID: "CVE-2023-0002", Reason: "was accepted", Expires: Date{day("2026-11-22")}},
			{ID: "CVE-2023-0003", Package: "openssl", Reason: "only openssl"},
		},
	}}
	extra := []Exception{{ID: "GHSA-35jh-r3h4-6jhm", Reason: "from .taskguardignore"}}
	tests := []struct {
		name string
		f    VulnFinding
		want Action
		why  string
	}{
		{"critical blocks", VulnFinding{ID: "CVE-1", Severity: "CRITICAL", FixedVersion: "1.2"}, ActionBlock, "CRITICAL at or above the block threshold HIGH"},
		{"high blocks", VulnFinding{ID: "CVE-1", Severity: "high"}, ActionBlock, "HIGH at or above"},
		{"medium alerts", VulnFinding{ID: "CVE-1", Severity: "MEDIUM"}, ActionAlert, "alert threshold MEDIUM"},
		{"low ignored", VulnFinding{ID: "CVE-1", Severity: "LOW"}, ActionIgnore, "below the thresholds"},
		{"unknown ignored", VulnFinding{ID: "CVE-1", Severity: "UNKNOWN"}, ActionIgnore, "below"},
		{"exception expires today still applies", VulnFinding{ID: "CVE-2023-0001", Severity: "CRITICAL"}, ActionIgnore, "exception: not reachable"},
		{"expired exception does not apply", VulnFinding{ID: "CVE-2023-0002", Severity: "CRITICAL"}, ActionBlock, "block threshold"},
		{"package-scoped exception", VulnFinding{ID: "CVE-2023-0003", Package: "openssl", Severity: "HIGH"}, ActionIgnore, "only openssl"},
		{"package-scoped exception, other package", VulnFinding{ID: "CVE-2023-0003", Package: "libssl3", Severity: "HIGH"}, ActionBlock, "block"},
		{"ignore file exception", VulnFinding{ID: "ghsa-35jh-r3h4-6jhm", Severity: "HIGH"}, ActionIgnore, "from .taskguardignore"},
		{"fresh fix within grace", VulnFinding{ID: "CVE-1", Severity: "CRITICAL", FixedVersion: "2", FixDate: now.AddDate(0, 0, -10)}, ActionAlert, "the fix is 10 days old (grace 30 days)"},
		{"old fix past grace", VulnFinding{ID: "CVE-1", Severity: "CRITICAL", FixedVersion: "2", FixDate: now.AddDate(0, 0, -31)}, ActionBlock, "block threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := rule.DecideVulnerability(tt.f, now, extra)
			if v.Action != tt.want || !strings.Contains(v.Reason, tt.why) {
				t.Errorf("got %s (%s), want %s (%s)", v.Action, v.Reason, tt.want, tt.why)
			}
		})
	}
	onlyFixed := &CIRule{Vulnerabilities: VulnRule{BlockThreshold: "LOW", OnlyFixed: true}}
	if v := onlyFixed.DecideVulnerability(VulnFinding{ID: "CVE-9", Severity: "CRITICAL"}, now, nil); v.Action != ActionIgnore {
		t.Errorf("only-fixed, no fix: %+v", v)
	}
	if v := onlyFixed.DecideVulnerability(VulnFinding{ID: "CVE-9", Severity: "CRITICAL", FixedVersion: "1"}, now, nil); v.Action != ActionBlock {
		t.Errorf("only-fixed, fixed: %+v", v)
	}
	if got := ExpiredExceptions(rule.Vulnerabilities.Exceptions, now); len(got) != 1 || got[0].ID != "CVE-2023-0002" {
		t.Errorf("expired = %+v", got)
	}
}

func TestDecideCompliance(t *testing.T) {
	now := day("2026-11-23")
	rule := &CIRule{Compliance: ComplianceRule{
		Default:    ActionAlert,
		Checks:     map[string]Action{"TG-TASK-001": ActionBlock, "TG-TASK-007": ActionIgnore},
		Exceptions: []Exception{{ID: "TG-TASK-001", Reason: "legacy", Expires: Date{day("2026-01-01")}}},
	}}
	for id, want := range map[string]Action{"TG-TASK-001": ActionBlock, "TG-TASK-007": ActionIgnore, "TG-TASK-004": ActionAlert} {
		if v := rule.DecideCompliance(ComplianceFinding{CheckID: id}, now, nil); v.Action != want {
			t.Errorf("%s: %+v, want %s", id, v, want)
		}
	}
	if v := (&CIRule{}).DecideCompliance(ComplianceFinding{CheckID: "X"}, now, nil); v.Action != ActionAlert {
		t.Errorf("empty rule default: %+v", v)
	}
}

func TestCIForMatchesRepository(t *testing.T) {
	p := &Policy{CI: []CIRule{
		{Name: "prod", Scope: Scope{Images: []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com/prod/*"}}},
		{Name: "web", Scope: Scope{Images: []string{"registry.example.com/web"}}},
		{Name: "rest"},
	}}
	for image, want := range map[string]string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/prod/api:1.2": "prod",
		"registry.example.com/web:1.0":                              "web",
		"registry.example.com/web@sha256:abc":                       "web",
		"localhost:5000/other:1":                                    "rest",
	} {
		if r := p.CIFor(image); r == nil || r.Name != want {
			t.Errorf("%s: %+v, want %s", image, r, want)
		}
	}
}

func TestParseIgnoreFile(t *testing.T) {
	f, err := ParseIgnoreFile([]byte("ignore:\n  - id: CVE-2023-44487\n    package: golang.org/x/net\n    reason: HTTP/2 is not served\n    expires: 2026-12-31\n  - id: TG-TASK-007\n    reason: tags are immutable in our registry\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Ignore) != 2 || f.Ignore[0].Expires.Format(time.DateOnly) != "2026-12-31" || !f.Ignore[1].Expires.IsZero() {
		t.Fatalf("%+v", f)
	}
	for _, bad := range []struct{ in, want string }{
		{"ignore:\n  - id: CVE-1\n", "ignore[0].reason: is required"},
		{"ignore:\n  - reason: x\n", "ignore[0].id: is required"},
		{"ignore:\n  - id: CVE-1\n    reason: x\n    expires: next week\n", `date "next week": use YYYY-MM-DD`},
		{"ignore:\n  - id: CVE-1\n    reason: x\n    expiry: 2026-01-01\n", `unknown field "expiry"`},
		{"ignore: [", "ignore file"},
	} {
		if _, err := ParseIgnoreFile([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.in, err, bad.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`
runtime:
  - name: seeds
    scope: {containers: [twistlock-fargate-task]}
    processes: {effect: prevent, denied: [mkdir]}
    network: {effect: prevent, deniedDomains: [yahoo.com], allowedListeningPorts: [80, "8000-8080"]}
waf:
  - name: web
    externalPort: 8080
    appPort: 80
    protections: {sqli: prevent, xss: alert}
ci:
  - name: default
    vulnerabilities: {alertThreshold: MEDIUM, blockThreshold: CRITICAL}
    compliance: {default: alert, checks: {TG-TASK-001: block}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Runtime[0].Network.AllowedListeningPorts[1] != (PortRange{8000, 8080}) || p.WAF[0].Protections[ProtectionSQLi] != EffectPrevent || p.CI[0].Compliance.Checks["TG-TASK-001"] != ActionBlock {
		t.Errorf("%+v", p)
	}
	for _, bad := range []struct{ in, want string }{
		{"ci:\n  - name: a\n    vulnerabilities: {blockThreshold: SEVERE}\n", `ci[0].vulnerabilities.blockThreshold: unknown severity "SEVERE"`},
		{"ci:\n  - name: a\n    compliance: {checks: {TG-TASK-001: stop}}\n", `ci[0].compliance.checks.TG-TASK-001: unknown action "stop"`},
		{"runtime:\n  - name: a\n    processes: {effect: kill}\n", `runtime[0].processes.effect: unknown effect "kill"`},
		{"rumtime: []\n", `unknown field "rumtime"`},
	} {
		if _, err := ParsePolicy([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.in, err, bad.want)
		}
	}
}

func TestCustomChecksValidate(t *testing.T) {
	good := `ci:
  - name: own
    compliance:
      checks: {ACME-1: block}
      custom:
        - {id: ACME-1, title: nginx config present, severity: high, fileExists: /etc/nginx/nginx.conf}
        - {id: ACME-2, title: no shell, severity: medium, fileAbsent: /bin/*sh}
        - {id: ACME-3, title: production mode, severity: low, env: {name: NODE_ENV, match: "^production$"}}
`
	p, err := ParsePolicy([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c := p.CI[0].Compliance.Custom; len(c) != 3 || c[2].Env.Name != "NODE_ENV" {
		t.Fatalf("custom = %+v", c)
	}
	for _, bad := range []struct{ custom, want string }{
		{`{id: TG-IMG-001, title: t, severity: low, fileExists: /x}`, `custom[0].id: "TG-IMG-001": the TG- prefix is reserved`},
		{`{title: t, severity: low, fileExists: /x}`, `custom[0].id: is required`},
		{`{id: A, severity: low, fileExists: /x}`, `custom[0].title: is required`},
		{`{id: A, title: t, severity: severe, fileExists: /x}`, `custom[0].severity: "severe"`},
		{`{id: A, title: t, severity: low}`, `custom[0]: give exactly one condition`},
		{`{id: A, title: t, severity: low, fileExists: /x, fileAbsent: /y}`, `custom[0]: give exactly one condition`},
		{`{id: A, title: t, severity: low, fileExists: etc/x}`, `custom[0].fileExists: "etc/x" is not an absolute glob`},
		{`{id: A, title: t, severity: low, env: {name: X, match: "("}}`, `custom[0].env.match: bad regular expression`},
	} {
		doc := "ci:\n  - name: r\n    compliance:\n      custom:\n        - " + bad.custom + "\n"
		if _, err := ParsePolicy([]byte(doc)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want %q", bad.custom, err, bad.want)
		}
	}
}
