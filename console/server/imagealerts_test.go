package server

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/taskimages"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// corpusDB builds the shared advisories into a temporary DB directory.
func corpusDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dir, filepath.Join(testenv.SharedDir(t), "corpora", "advisories"), time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// imageAudits returns the image alerts of one container.
func (e *testEnv) imageAudits(container string) []api.Audit {
	e.t.Helper()
	p := api.PathRuntimeAudits + "?kind=image&limit=1000&container=" + container
	r := e.do("GET", p, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		e.t.Fatalf("GET %s: %d %s", p, r.status, r.body)
	}
	var page api.AuditPage
	if err := json.Unmarshal([]byte(r.body), &page); err != nil {
		e.t.Fatal(err)
	}
	return page.Audits
}

// postInv posts an inventory of the corpus's perl-base (fixed CVEs) and
// base-files for container c of task family shop-web, as an agent.
func (e *testEnv) postInv(c string) api.TaskImage {
	e.t.Helper()
	inv := api.Inventory{
		TaskFamily: "shop-web", TaskID: "task-" + c, Container: c, Image: "registry.example/shop/web:1.4",
		ImageDigest: "sha256:" + strings.Repeat("ab", 32), Hash: "sha256:x",
		OS: &api.InventoryOS{Family: "debian", Name: "12.5"},
		Packages: []api.InventoryPackage{
			{Type: "dpkg", Name: "perl-base", Version: "5.36.0-7+deb12u3", SrcName: "perl", SrcVersion: "5.36.0-7+deb12u3"},
			{Type: "dpkg", Name: "base-files", Version: "12.4+deb12u5"},
		},
		Compliance: []api.ComplianceFinding{
			{CheckID: "TG-IMG-001", Family: "image", Title: "Image runs as root", Severity: "MEDIUM", Target: "user", Message: "the app runs as uid 0"},
			{CheckID: "TG-IMG-002", Family: "image", Title: "No HEALTHCHECK", Severity: "LOW", Target: "config", Message: "no healthcheck"},
		},
	}
	body, _ := json.Marshal(inv)
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAgent), string(body)); r.status != 204 {
		e.t.Fatalf("post inventory: %d %s", r.status, r.body)
	}
	for _, ti := range e.taskImages("").Images {
		if ti.Container == c {
			return e.taskImage(ti.ID, "")
		}
	}
	e.t.Fatalf("container %s not listed", c)
	return api.TaskImage{}
}

// TestImageAlerts: an image rule turns the findings of a posted inventory
// into exactly one alert each in the audit stream (kind image); posting again
// does not duplicate; an exception suppresses and an expired one does not;
// the rule's scope decides which containers are evaluated; only the curated
// Fargate checks alert.
func TestImageAlerts(t *testing.T) {
	e := newTestEnvWith(t, auth.ThrottleConfig{}, &taskimages.Matcher{Dir: corpusDB(t)})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	rule := policy.ImageRule{Name: "shop", Scope: policy.Scope{Tasks: []string{"shop-*"}, Containers: []string{"web", "api", "worker"}},
		Vulnerabilities: policy.VulnRule{AlertThreshold: "UNKNOWN"}} // the corpus's Debian facts carry no severity
	if _, err := admin.AddImageRule(ctx, rule); err != nil {
		t.Fatal(err)
	}

	detail := e.postInv("web")
	var want []string
	for _, v := range detail.Vulnerabilities {
		if policy.SeverityAtLeast(v.Severity, rule.Vulnerabilities.AlertThreshold) {
			want = append(want, v.VulnerabilityID+" "+v.PkgName)
		}
	}
	if len(want) < 2 {
		t.Fatalf("the corpus gives %d alertable findings for perl-base; the test needs 2", len(want))
	}
	keys := func(as []api.Audit) []string {
		var out []string
		for _, a := range as {
			if f := strings.Fields(a.Message); !strings.HasPrefix(a.Message, "TG-") && len(f) > 3 {
				out = append(out, f[0]+" "+f[3]) // "ID (SEVERITY) in PACKAGE ..."
			}
		}
		slices.Sort(out)
		return out
	}
	slices.Sort(want)
	got := e.imageAudits("web")
	if k := keys(got); !slices.Equal(k, want) {
		t.Fatalf("alerts for web:\n got %q\nwant %q", k, want)
	}
	// TG-IMG-001 alerts (Fargate set); TG-IMG-002 (HEALTHCHECK) is left out.
	var checks []string
	for _, a := range got {
		if a.Kind != api.AuditImage || a.Effect != policy.EffectAlert || a.Rule != "shop" || a.TaskFamily != "shop-web" {
			t.Errorf("audit %+v: want kind image, effect alert, rule shop, family shop-web", a)
		}
		if strings.HasPrefix(a.Message, "TG-") {
			checks = append(checks, a.Message)
		}
	}
	if len(checks) != 1 || !strings.HasPrefix(checks[0], "TG-IMG-001 (MEDIUM)") {
		t.Errorf("compliance alerts = %q, want only TG-IMG-001", checks)
	}
	v := detail.Vulnerabilities[0]
	msg := v.VulnerabilityID + " (" + strings.ToUpper(v.Severity) + ") in perl-base 5.36.0-7+deb12u3 of image registry.example/shop/web:1.4 in task family shop-web container web: "
	if !slices.ContainsFunc(got, func(a api.Audit) bool { return strings.HasPrefix(a.Message, msg) }) {
		t.Errorf("no alert reads %q...; got %+v", msg, got)
	}

	// Posting again evaluates again and writes nothing new.
	e.postInv("web")
	if again := e.imageAudits("web"); len(again) != len(got) {
		t.Errorf("posting again: %d alerts, want %d", len(again), len(got))
	}

	// An exception suppresses its CVE; an expired one does not.
	excepted := want[0][:strings.Index(want[0], " ")]
	today := time.Now().UTC()
	rule.Vulnerabilities.Exceptions = []policy.Exception{{ID: excepted, Reason: "not reachable", Expires: policy.Date{Time: today.AddDate(0, 1, 0).Truncate(24 * time.Hour)}}}
	if _, err := admin.UpdateImageRule(ctx, "shop", rule); err != nil {
		t.Fatal(err)
	}
	e.postInv("api")
	if k := keys(e.imageAudits("api")); !slices.Equal(k, want[1:]) {
		t.Errorf("with an exception for %s:\n got %q\nwant %q", excepted, k, want[1:])
	}
	rule.Vulnerabilities.Exceptions[0].Expires = policy.Date{Time: today.AddDate(0, 0, -2).Truncate(24 * time.Hour)}
	if _, err := admin.UpdateImageRule(ctx, "shop", rule); err != nil {
		t.Fatal(err)
	}
	e.postInv("worker")
	if k := keys(e.imageAudits("worker")); !slices.Equal(k, want) {
		t.Errorf("with an expired exception:\n got %q\nwant %q", k, want)
	}
	// A defender cannot take an image alert's ID (and so suppress it).
	forged := `{"audits":[{"id":"` + got[0].ID + `","kind":"process","effect":"alert","message":"x"}]}`
	if r := e.do("POST", api.PathAgentAudits, basic(auth.RoleAgent), forged); r.status != 202 ||
		!strings.Contains(r.body, `"stored": 0`) || !strings.Contains(r.body, "is the console's") {
		t.Errorf("an agent posted an audit with an image alert's ID: %d %s; want it named as rejected, not stored", r.status, r.body)
	}
	// Out of scope: no rule matches, no alerts.
	e.postInv("sidecar")
	if n := len(e.imageAudits("sidecar")); n != 0 {
		t.Errorf("out-of-scope container: %d alerts", n)
	}
	// A rule that covers it applies at once to what is already reported.
	if _, err := admin.AddImageRule(ctx, policy.ImageRule{Name: "sidecars", Scope: policy.Scope{Containers: []string{"sidecar"}},
		Vulnerabilities: policy.VulnRule{AlertThreshold: "UNKNOWN"}}); err != nil {
		t.Fatal(err)
	}
	if k := keys(e.imageAudits("sidecar")); !slices.Equal(k, want) {
		t.Errorf("after adding a rule for the sidecar:\n got %q\nwant %q", k, want)
	}
}

// TestImageRulesValidation: image rules refuse what cannot apply to a
// running container, naming the field.
func TestImageRulesValidation(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tests := []struct {
		name, body, field string
	}{
		{"block threshold", `{"name":"a","vulnerabilities":{"blockThreshold":"HIGH"}}`, "images[0].vulnerabilities.blockThreshold"},
		{"bad severity", `{"name":"a","vulnerabilities":{"alertThreshold":"SEVERE"}}`, "images[0].vulnerabilities.alertThreshold"},
		{"block action", `{"name":"a","compliance":{"checks":{"TG-IMG-001":"block"}}}`, "images[0].compliance.checks.TG-IMG-001"},
		{"left-out check", `{"name":"a","compliance":{"checks":{"TG-IMG-002":"alert"}}}`, "images[0].compliance.checks.TG-IMG-002"},
		{"exception without reason", `{"name":"a","vulnerabilities":{"exceptions":[{"id":"CVE-1"}]}}`, "images[0].vulnerabilities.exceptions[0].reason"},
		{"bad glob", `{"name":"a","scope":{"images":["["]}}`, "images[0].scope.images[0]"},
		{"no name", `{"vulnerabilities":{"alertThreshold":"LOW"}}`, "images[0].name"},
		{"custom without condition", `{"name":"a","compliance":{"custom":[{"id":"X","title":"t","severity":"LOW"}]}}`, "images[0].compliance.custom[0]"},
		{"custom reserved ID", `{"name":"a","compliance":{"custom":[{"id":"TG-X","title":"t","severity":"LOW","fileAbsent":"/x"}]}}`, "images[0].compliance.custom[0].id"},
		{"custom relative glob", `{"name":"a","compliance":{"custom":[{"id":"X","title":"t","severity":"LOW","fileAbsent":"etc/x"}]}}`, "images[0].compliance.custom[0].fileAbsent"},
		{"custom bad env regexp", `{"name":"a","compliance":{"custom":[{"id":"X","title":"t","severity":"LOW","env":{"name":"A","match":"("}}]}}`, "images[0].compliance.custom[0].env.match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", api.PathImagePolicy, basic(auth.RoleAdmin), tc.body)
			if r.status != 400 || !strings.Contains(r.body, `"field": "`+tc.field+`"`) {
				t.Errorf("%s: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
			}
		})
	}
	if r := e.do("POST", api.PathImagePolicy, basic(auth.RoleAuditor), `{"name":"a"}`); r.status != 403 {
		t.Errorf("an auditor added an image rule: %d", r.status)
	}
	if r := e.do("POST", api.PathImagePolicy, basic(auth.RoleAdmin), `{"name":"ok","vulnerabilities":{"alertThreshold":"HIGH","onlyFixed":true}}`); r.status != 201 {
		t.Fatalf("valid rule: %d %s", r.status, r.body)
	}
	if r := e.do("POST", api.PathImagePolicy, basic(auth.RoleAdmin), `{"name":"custom","compliance":{"custom":[{"id":"ACME-1","title":"no debug","severity":"HIGH","fileAbsent":"/opt/debug/*"},{"id":"ACME-2","title":"env","severity":"LOW","env":{"name":"APP_ENV","match":"^prod$"}}]}}`); r.status != 201 {
		t.Fatalf("valid rule with custom checks: %d %s", r.status, r.body)
	}
	r := e.do("GET", api.PathPolicyHistory, basic(auth.RoleAuditor), "")
	if !strings.Contains(r.body, `"action": "add images rule"`) {
		t.Errorf("history lacks the change: %s", r.body)
	}
}

// TestImageAlertsCustomCheck: over real HTTPS and SQLite, an image rule's
// custom check reaches the defender in its agent policy; an inventory
// carrying that check's failure raises exactly one image alert (a failure
// of a check that is not the rule's raises none), and posting the same
// inventory again does not duplicate it.
func TestImageAlertsCustomCheck(t *testing.T) {
	e := newTestEnvWith(t, auth.ThrottleConfig{}, &taskimages.Matcher{Dir: corpusDB(t)})
	ctx := context.Background()
	rule := policy.ImageRule{Name: "shop", Scope: policy.Scope{Tasks: []string{"shop-*"}},
		Vulnerabilities: policy.VulnRule{AlertThreshold: "CRITICAL"},
		Compliance: policy.ComplianceRule{Custom: []policy.CustomCheck{
			{ID: "ACME-1", Title: "no debug agent", Severity: "HIGH", FileAbsent: "/opt/debug/*.jar"},
		}}}
	if _, err := e.apiClient(auth.RoleAdmin).AddImageRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	p, _, _, err := e.agentClient("shop-web").AgentPolicy(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.ImagesFor(policy.Identity{TaskFamily: "shop-web", Container: "web", Image: "x"}); r == nil || len(r.Compliance.Custom) != 1 || r.Compliance.Custom[0].ID != "ACME-1" {
		t.Fatalf("the agent policy lacks the custom check: %+v", p.Images)
	}
	inv := api.Inventory{
		TaskFamily: "shop-web", TaskID: "task-1", Container: "web", Image: "registry.example/shop/web:1.4",
		ImageDigest: "sha256:" + strings.Repeat("cd", 32), Hash: "sha256:y",
		OS: &api.InventoryOS{Family: "debian", Name: "12.5"},
		Compliance: []api.ComplianceFinding{
			{CheckID: "ACME-1", Family: "image", Title: "no debug agent", Severity: "HIGH", Target: "/opt/debug/agent.jar",
				Message: "file /opt/debug/agent.jar matches /opt/debug/*.jar, which must be absent"},
			{CheckID: "OTHER-9", Family: "image", Title: "not the rule's", Severity: "HIGH", Target: "container", Message: "x"},
		},
	}
	body, _ := json.Marshal(inv)
	post := func() {
		t.Helper()
		if r := e.do("POST", api.PathAgentInventory, "bearer "+agentToken(t, e, "shop-web"), string(body)); r.status != 204 {
			t.Fatalf("post inventory: %d %s", r.status, r.body)
		}
	}
	custom := func() []api.Audit {
		var out []api.Audit
		for _, a := range e.imageAudits("web") {
			if strings.HasPrefix(a.Message, "ACME-") || strings.HasPrefix(a.Message, "OTHER-") {
				out = append(out, a)
			}
		}
		return out
	}
	post()
	got := custom()
	if len(got) != 1 {
		t.Fatalf("custom alerts = %+v, want exactly one (ACME-1)", got)
	}
	a := got[0]
	if a.Kind != api.AuditImage || a.Effect != policy.EffectAlert || a.Rule != "shop" || a.Severity != "high" ||
		!strings.HasPrefix(a.Message, "ACME-1 (HIGH) no debug agent of image registry.example/shop/web:1.4 in task family shop-web container web: file /opt/debug/agent.jar") {
		t.Errorf("alert %+v", a)
	}
	post()
	if again := custom(); len(again) != 1 || again[0].ID != a.ID {
		t.Errorf("posting again: %+v, want the same single alert %s", again, a.ID)
	}
}
