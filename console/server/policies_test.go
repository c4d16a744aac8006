package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
)

// apiClient is the real Go client of the test console acting as role r.
func (e *testEnv) apiClient(r auth.Role) *api.Client {
	e.t.Helper()
	c, err := api.NewClient(e.url, api.WithHTTPClient(e.client), api.WithBasicAuth(userOf(r), passwords[r]))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// agentClient acts with the agent credential of a task family.
func (e *testEnv) agentClient(family string) *api.Client {
	e.t.Helper()
	tok, err := e.auth.AgentToken(context.Background(), family)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := api.NewClient(e.url, api.WithHTTPClient(e.client), api.WithToken(tok))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func statusOf(err error) int {
	var se *api.StatusError
	if e, ok := err.(*api.StatusError); ok {
		se = e
	}
	if se == nil {
		return 0
	}
	return se.StatusCode
}

var seedsRule = policy.RuntimeRule{
	Name:      "seeds",
	Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}},
	Network:   policy.NetworkPolicy{Effect: policy.EffectPrevent, DeniedDomains: []string{"yahoo.com"}},
}

func TestRuntimeRuleCRUD(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)

	rules, rev, err := admin.RuntimeRules(ctx)
	if err != nil || len(rules) != 0 || rev != 0 {
		t.Fatalf("RuntimeRules on a new console = %v, %d, %v", rules, rev, err)
	}
	if rev, err := admin.AddRuntimeRule(ctx, seedsRule); err != nil || rev != 1 {
		t.Fatalf("AddRuntimeRule = %d, %v; want revision 1", rev, err)
	}
	second := policy.RuntimeRule{Name: "web-only", Scope: policy.Scope{Tasks: []string{"web-*"}},
		Processes: policy.ProcessPolicy{Effect: policy.EffectAlert, Allowed: []string{"/usr/bin/*"}}}
	if _, err := admin.AddRuntimeRule(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddRuntimeRule(ctx, seedsRule); statusOf(err) != http.StatusConflict {
		t.Fatalf("adding a taken name: err = %v, want 409", err)
	}
	// ?index=0 puts a rule first (first match wins, so order matters).
	first := policy.RuntimeRule{Name: "first", Scope: policy.Scope{Containers: []string{"sidecar"}}}
	b, _ := json.Marshal(first)
	if r := e.do("POST", api.PathRuntimePolicy+"?index=0", basic(auth.RoleAdmin), string(b)); r.status != 201 || r.header.Get("ETag") != `"3"` {
		t.Fatalf("POST ?index=0: %d %s (ETag %s)", r.status, r.body, r.header.Get("ETag"))
	}
	rules, rev, err = admin.RuntimeRules(ctx)
	if err != nil || rev != 3 || len(rules) != 3 || rules[0].Name != "first" || rules[1].Name != "seeds" || rules[2].Name != "web-only" {
		t.Fatalf("RuntimeRules = %+v, rev %d, %v", rules, rev, err)
	}

	// Update, rename through update, delete.
	changed := seedsRule
	changed.Processes.Denied = []string{"mkdir", "curl"}
	if _, err := admin.UpdateRuntimeRule(ctx, "seeds", changed); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", api.PathRuntimePolicy+"/seeds", basic(auth.RoleAuditor), "")
	if r.status != 200 || !strings.Contains(r.body, `"curl"`) {
		t.Fatalf("GET one rule: %d %s", r.status, r.body)
	}
	if _, err := admin.UpdateRuntimeRule(ctx, "nope", changed); statusOf(err) != http.StatusNotFound {
		t.Fatalf("updating a missing rule: err = %v, want 404", err)
	}
	if _, err := admin.DeleteRuntimeRule(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteRuntimeRule(ctx, "first"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("deleting twice: err = %v, want 404", err)
	}
	if r := e.do("GET", api.PathRuntimePolicy+"/first", basic(auth.RoleAdmin), ""); r.status != 404 {
		t.Fatalf("GET a deleted rule: %d", r.status)
	}

	// The admin trail: who did what, newest first.
	hist, err := admin.PolicyHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hist {
		got = append(got, h.Actor+" "+h.Action+" "+h.Rule)
	}
	want := []string{
		"user-admin delete runtime rule first",
		"user-admin update runtime rule seeds",
		"user-admin add runtime rule first",
		"user-admin add runtime rule web-only",
		"user-admin add runtime rule seeds",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if hist[0].Revision != 5 || hist[4].Revision != 1 {
		t.Errorf("history revisions %d..%d, want 5..1", hist[0].Revision, hist[4].Revision)
	}
	// Any revision can be read back.
	r = e.do("GET", api.PathPolicyHistory+"/3", basic(auth.RoleAuditor), "")
	var at3 policy.Policy
	if r.status != 200 || json.Unmarshal([]byte(r.body), &at3) != nil || at3.Revision != 3 || len(at3.Runtime) != 3 {
		t.Errorf("policy at revision 3: %d %s", r.status, r.body)
	}
	if r := e.do("GET", api.PathPolicyHistory+"/99", basic(auth.RoleAuditor), ""); r.status != 404 {
		t.Errorf("policy at revision 99: %d, want 404", r.status)
	}
	whole, err := admin.Policy(ctx)
	if err != nil || whole.Revision != 5 || len(whole.Runtime) != 2 {
		t.Errorf("Policy = %+v, %v", whole, err)
	}
}

func TestPolicyValidation(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	if _, err := admin.AddRuntimeRule(ctx, seedsRule); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"unknown effect", "POST", api.PathRuntimePolicy, `{"name":"x","processes":{"effect":"block"}}`, 400, "runtime[1].processes.effect"},
		{"bad glob", "POST", api.PathRuntimePolicy, `{"name":"x","scope":{"tasks":["web-["]}}`, 400, "runtime[1].scope.tasks[0]"},
		{"no name", "POST", api.PathRuntimePolicy, `{"processes":{"effect":"alert"}}`, 400, "runtime[1].name"},
		{"duplicate names in a replace", "PUT", api.PathRuntimePolicy, `[{"name":"a"},{"name":"a"}]`, 400, "runtime[1].name"},
		{"rename through update", "PUT", api.PathRuntimePolicy + "/seeds", `{"name":"x"}`, 0, ""},
		{"port out of range", "POST", api.PathWAFPolicy, `{"name":"w","externalPort":70000,"appPort":8080,"protections":{}}`, 400, ""},
		{"port zero", "POST", api.PathWAFPolicy, `{"name":"w","externalPort":0,"appPort":8080,"protections":{}}`, 400, "waf[0].externalPort"},
		{"unknown protection", "POST", api.PathWAFPolicy, `{"name":"w","externalPort":80,"appPort":8080,"protections":{"magic":"alert"}}`, 400, "waf[0].protections"},
		{"bad CI threshold", "POST", api.PathCIPolicy, `{"name":"c","vulnerabilities":{"blockThreshold":"SEVERE"}}`, 400, "ci[0].vulnerabilities.blockThreshold"},
		{"unknown field", "POST", api.PathRuntimePolicy, `{"name":"x","proceses":{}}`, 400, ""},
		{"not JSON", "PUT", api.PathRuntimePolicy, `[{`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, basic(auth.RoleAdmin), tt.body)
			if tt.status == 0 {
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			msg := errorMessage(t, r.body)
			if tt.field != "" && !strings.Contains(msg, tt.field+":") {
				t.Errorf("error %q does not name the field %s", msg, tt.field)
			}
		})
	}
	// Nothing invalid was saved: only the first add and the rename.
	if p, _ := admin.Policy(ctx); p.Revision != 2 || len(p.Runtime) != 1 || p.Runtime[0].Name != "x" {
		t.Errorf("after the refused writes the policy is %+v", p)
	}
	// The fields list names each problem.
	r := e.do("PUT", api.PathRuntimePolicy, basic(auth.RoleAdmin), `[{"name":"a","processes":{"effect":"no"},"network":{"effect":"nah"}}]`)
	var ve api.ValidationError
	if err := json.Unmarshal([]byte(r.body), &ve); err != nil || len(ve.Fields) != 2 ||
		ve.Fields[0].Field != "runtime[0].processes.effect" || ve.Fields[1].Field != "runtime[0].network.effect" {
		t.Errorf("validation body = %s", r.body)
	}
}

func TestPolicyRolesAndIfMatch(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	rule := `{"name":"r"}`
	for _, role := range []auth.Role{auth.RoleAuditor, auth.RoleCI, auth.RoleDefenderManager, auth.RoleAgent} {
		if r := e.do("POST", api.PathRuntimePolicy, basic(role), rule); r.status != 403 {
			t.Errorf("%s adds a rule: %d, want 403", role, r.status)
		}
	}
	for _, role := range []auth.Role{auth.RoleAuditor, auth.RoleCI, auth.RoleDefenderManager} {
		if r := e.do("GET", api.PathCIPolicy, basic(role), ""); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
			t.Errorf("%s reads CI rules: %d %s", role, r.status, r.body)
		}
	}
	if r := e.do("GET", api.PathPolicies, basic(auth.RoleAgent), ""); r.status != 403 {
		t.Errorf("an agent reads the whole policy: %d, want 403", r.status)
	}
	admin := e.apiClient(auth.RoleAdmin)
	rev, err := admin.SetWAFRules(ctx, []policy.WAFRule{{Name: "w", ExternalPort: 80, AppPort: 8080,
		Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent}}}, 0)
	if err != nil || rev != 1 {
		t.Fatalf("SetWAFRules = %d, %v", rev, err)
	}
	if _, err := admin.SetCIRules(ctx, []policy.CIRule{{Name: "c", Vulnerabilities: policy.VulnRule{BlockThreshold: "HIGH"}}}, rev); err != nil {
		t.Fatalf("SetCIRules at the current revision: %v", err)
	}
	if _, err := admin.SetRuntimeRules(ctx, []policy.RuntimeRule{seedsRule}, rev); statusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("a write on a stale revision: err = %v, want 412", err)
	}
	ci, rev, err := e.apiClient(auth.RoleCI).CIRules(ctx)
	if err != nil || rev != 2 || len(ci) != 1 || ci[0].Vulnerabilities.BlockThreshold != "HIGH" {
		t.Fatalf("CIRules = %+v, %d, %v", ci, rev, err)
	}
	waf, _, err := admin.WAFRules(ctx)
	if err != nil || len(waf) != 1 || waf[0].Protections[policy.ProtectionSQLi] != policy.EffectPrevent {
		t.Fatalf("WAFRules = %+v, %v", waf, err)
	}
	if _, err := admin.UpdateWAFRule(ctx, "w", policy.WAFRule{Name: "w", ExternalPort: 443, AppPort: 8443, Protections: map[policy.Protection]policy.Effect{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteCIRule(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddCIRule(ctx, policy.CIRule{Name: "c2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateCIRule(ctx, "c2", policy.CIRule{Name: "c2", Compliance: policy.ComplianceRule{Default: policy.ActionBlock}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteWAFRule(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	p, err := admin.Policy(ctx)
	if err != nil || len(p.WAF) != 0 || len(p.CI) != 1 || p.CI[0].Compliance.Default != policy.ActionBlock {
		t.Fatalf("Policy = %+v, %v", p, err)
	}
}

func TestMethodNotAllowedOnRulePaths(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	r := e.do("PATCH", api.PathRuntimePolicy+"/some-rule", basic(auth.RoleAdmin), "")
	if r.status != 405 || r.header.Get("Allow") != "GET, PUT, DELETE" {
		t.Errorf("PATCH on a rule: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := e.do("GET", api.PathRuntimePolicy+"/a/b", basic(auth.RoleAdmin), ""); r.status != 404 {
		t.Errorf("GET below a rule: %d, want 404", r.status)
	}
}
