package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
)

// parallelGuesses sends n wrong-password requests for user at once and
// counts the answers by status.
func parallelGuesses(t *testing.T, e *testEnv, user string, n int) map[int]int {
	t.Helper()
	start := make(chan struct{})
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url+api.PathPolicies, nil)
			req.SetBasicAuth(user, fmt.Sprintf("wrong-guess-%03d", i))
			<-start
			resp, err := e.client.Do(req)
			status := -1
			if err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

// 150 parallel wrong passwords for one user: at most the lockout (10) are
// checked and answered 401, every other one 429 — on SQLite and PostgreSQL.
func TestParallelGuessesThrottled(t *testing.T) {
	check := func(t *testing.T, e *testEnv) {
		counts := parallelGuesses(t, e, userOf(auth.RoleAuditor), 150)
		t.Logf("150 parallel wrong passwords: %d × 401, %d × 429 (all: %v)", counts[401], counts[429], counts)
		if counts[401] > 20 || counts[401] < 1 || counts[401]+counts[429] != 150 {
			t.Fatalf("answers %v: want at most 20 × 401 and the rest 429", counts)
		}
		// The right password is refused too while the user is locked out from here.
		if r := e.do("GET", api.PathPolicies, basic(auth.RoleAuditor), ""); r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("the right password during the lockout: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		// Other users from the same address are not locked out.
		if r := e.do("GET", api.PathPolicies, basic(auth.RoleCI), ""); r.status != 200 {
			t.Errorf("another user: %d", r.status)
		}
	}
	t.Run("sqlite", func(t *testing.T) { check(t, newTestEnv(t, auth.ThrottleConfig{})) })
	t.Run("postgres", func(t *testing.T) {
		cluster := pgtest.Start(t)
		st, err := postgres.Open(context.Background(), cluster.NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		check(t, newTestEnvOn(t, st, auth.ThrottleConfig{}, nil))
	})
}

// sessionFromForm signs in through the login form and returns the session cookie value.
func sessionFromForm(t *testing.T, e *testEnv, role auth.Role) string {
	t.Helper()
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"username": {userOf(role)}, "password": {passwords[role]}}
	resp, err := noRedirect.Post(e.url+"/login", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("sign-in set no session cookie (%d)", resp.StatusCode)
	return ""
}

func withCookie(e *testEnv, method, path, value string, csrf bool) int {
	req, _ := http.NewRequest(method, e.url+path, nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
	if csrf {
		req.Header.Set(csrfHeader, "1")
	}
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// After logout the old session value is refused, 401, as a cookie and as a
// bearer token; the API's logout does the same for a bearer token.
func TestLogoutRevokes(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	session := sessionFromForm(t, e, auth.RoleAuditor)
	if s := withCookie(e, "GET", api.PathPolicies, session, false); s != 200 {
		t.Fatalf("the session before logout: %d", s)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+session, ""); r.status != 200 {
		t.Fatalf("the session value as a bearer token before logout: %d", r.status)
	}
	if s := withCookie(e, "POST", "/logout", session, false); s != http.StatusSeeOther {
		t.Fatalf("POST /logout: %d", s)
	}
	if s := withCookie(e, "GET", api.PathPolicies, session, false); s != 401 {
		t.Errorf("the old session cookie after logout: %d, want 401", s)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+session, ""); r.status != 401 {
		t.Errorf("the old session value as a bearer token after logout: %d, want 401", r.status)
	}
	// A page with the old cookie goes back to the login page.
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("a page with the old cookie: %v %v", resp, err)
	}

	// POST /logout with a bearer token revokes that token too.
	bt := e.login(userOf(auth.RoleAuditor), passwords[auth.RoleAuditor]).Token
	if r := e.do("POST", "/logout", "bearer "+bt, ""); r.status != 200 && r.status != http.StatusSeeOther {
		t.Fatalf("POST /logout with a bearer token: %d", r.status)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+bt, ""); r.status != 401 {
		t.Errorf("a bearer token after POST /logout: %d, want 401", r.status)
	}

	// POST /api/v1/logout with a bearer token.
	tok := e.login(userOf(auth.RoleCI), passwords[auth.RoleCI]).Token
	if r := e.do("POST", api.PathLogout, "bearer "+tok, ""); r.status != 204 {
		t.Fatalf("API logout: %d %s", r.status, r.body)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+tok, ""); r.status != 401 {
		t.Errorf("a token after API logout: %d, want 401", r.status)
	}
	if r := e.do("POST", api.PathLogout, basic(auth.RoleCI), ""); r.status != 400 {
		t.Errorf("API logout with a password: %d, want 400", r.status)
	}
	// With a cookie the API logout needs the CSRF header.
	s2 := sessionFromForm(t, e, auth.RoleAuditor)
	if s := withCookie(e, "POST", api.PathLogout, s2, false); s != 401 {
		t.Errorf("API logout with a cookie and no CSRF header: %d, want 401", s)
	}
	if s := withCookie(e, "POST", api.PathLogout, s2, true); s != 204 {
		t.Errorf("API logout with a cookie: %d, want 204", s)
	}
	if s := withCookie(e, "GET", api.PathPolicies, s2, false); s != 401 {
		t.Errorf("the cookie after API logout: %d", s)
	}
}

func TestUserManagement(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	if _, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "bob", Password: "bob-password-1", Role: "ci"}); err != nil {
		t.Fatal(err)
	}
	bobTok := e.login("bob", "bob-password-1").Token
	bob := "basic bob bob-password-1"
	// Disable: password and token refused; enable: password works again, the old token stays revoked.
	yes, no := true, false
	if u, err := admin.UpdateUser(ctx, "bob", api.UpdateUserRequest{Disabled: &yes}); err != nil || !u.Disabled {
		t.Fatalf("disable: %+v, %v", u, err)
	}
	if r := e.do("GET", api.PathPolicies, bob, ""); r.status != 401 {
		t.Errorf("a disabled user's password: %d", r.status)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+bobTok, ""); r.status != 401 {
		t.Errorf("a disabled user's token: %d", r.status)
	}
	if _, err := admin.UpdateUser(ctx, "bob", api.UpdateUserRequest{Disabled: &no}); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathPolicies, bob, ""); r.status != 200 {
		t.Errorf("an enabled user: %d", r.status)
	}
	// A user changes their own password with the current one; not someone else's.
	bobC, _ := api.NewClient(e.url, api.WithHTTPClient(e.client), api.WithBasicAuth("bob", "bob-password-1"))
	if err := bobC.SetPassword(ctx, "bob", api.SetPasswordRequest{Password: "bob-password-2", CurrentPassword: "nope-nope"}); statusOf(err) != 403 {
		t.Errorf("a wrong current password: %v", err)
	}
	if err := bobC.SetPassword(ctx, userOf(auth.RoleAuditor), api.SetPasswordRequest{Password: "bob-password-2", CurrentPassword: "bob-password-1"}); statusOf(err) != 403 {
		t.Errorf("setting another user's password: %v", err)
	}
	tok2 := e.login("bob", "bob-password-1").Token
	if err := bobC.SetPassword(ctx, "bob", api.SetPasswordRequest{Password: "bob-password-2", CurrentPassword: "bob-password-1"}); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathPolicies, bob, ""); r.status != 401 {
		t.Errorf("the old password: %d", r.status)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+tok2, ""); r.status != 401 {
		t.Errorf("a token from before the password change: %d", r.status)
	}
	// An admin sets it; a too short one is refused.
	if err := admin.SetPassword(ctx, "bob", api.SetPasswordRequest{Password: "short"}); statusOf(err) != 400 {
		t.Errorf("a short password: %v", err)
	}
	if err := admin.SetPassword(ctx, "bob", api.SetPasswordRequest{Password: "bob-password-3"}); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathPolicies, "basic bob bob-password-3", ""); r.status != 200 {
		t.Errorf("the admin-set password: %d", r.status)
	}
	// Role change and families.
	ag := "agent"
	if _, err := admin.UpdateUser(ctx, "bob", api.UpdateUserRequest{Role: &ag}); statusOf(err) != 400 {
		t.Errorf("an agent role without families: %v", err)
	}
	fams := []string{"shop-api"}
	if u, err := admin.UpdateUser(ctx, "bob", api.UpdateUserRequest{Role: &ag, TaskFamilies: &fams}); err != nil || u.Role != "agent" || len(u.TaskFamilies) != 1 {
		t.Errorf("agent role with a family: %+v, %v", u, err)
	}
	// The last enabled admin can be neither disabled, demoted nor deleted.
	ci := "ci"
	if _, err := admin.UpdateUser(ctx, userOf(auth.RoleAdmin), api.UpdateUserRequest{Disabled: &yes}); statusOf(err) != 409 {
		t.Errorf("disabling the last admin: %v", err)
	}
	if _, err := admin.UpdateUser(ctx, userOf(auth.RoleAdmin), api.UpdateUserRequest{Role: &ci}); statusOf(err) != 409 {
		t.Errorf("demoting the last admin: %v", err)
	}
	if err := admin.DeleteUser(ctx, userOf(auth.RoleAdmin)); statusOf(err) != 409 {
		t.Errorf("deleting the last admin: %v", err)
	}
	// Delete: the user and their tokens go.
	tok3 := e.login("bob", "bob-password-3").Token
	if err := admin.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+tok3, ""); r.status != 401 {
		t.Errorf("a deleted user's token: %d", r.status)
	}
	if err := admin.DeleteUser(ctx, "bob"); statusOf(err) != 404 {
		t.Errorf("deleting twice: %v", err)
	}
	if _, err := e.apiClient(auth.RoleCI).User(ctx, "bob"); statusOf(err) != 403 {
		t.Errorf("a ci user reading users: %v", err)
	}
}

func TestTokenListingAndRevocation(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	t1 := e.login(userOf(auth.RoleCI), passwords[auth.RoleCI]).Token
	t2 := e.login(userOf(auth.RoleCI), passwords[auth.RoleCI]).Token
	adminTok := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin]).Token
	ci, _ := api.NewClient(e.url, api.WithHTTPClient(e.client), api.WithToken(t2))
	own, err := ci.Tokens(ctx, "", "")
	if err != nil || len(own) != 2 {
		t.Fatalf("own tokens: %+v, %v", own, err)
	}
	var current, other api.Token
	for _, tk := range own {
		if tk.Subject != userOf(auth.RoleCI) || len(tk.ID) != 64 || strings.Contains(tk.ID, t1) {
			t.Errorf("token record %+v", tk)
		}
		if tk.Current {
			current = tk
		} else {
			other = tk
		}
	}
	if current.ID == "" || other.ID == "" {
		t.Fatalf("no current token marked: %+v", own)
	}
	// The list never holds a token value.
	if r := e.do("GET", api.PathTokens, "bearer "+t2, ""); strings.Contains(r.body, t1) || strings.Contains(r.body, t2) {
		t.Error("the token list shows token values")
	}
	if err := ci.RevokeToken(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+t1, ""); r.status != 401 {
		t.Errorf("a revoked token: %d", r.status)
	}
	// Another user's token: not found for a non-admin, revocable by an admin.
	adm, _ := api.NewClient(e.url, api.WithHTTPClient(e.client), api.WithToken(adminTok))
	all, err := adm.Tokens(ctx, userOf(auth.RoleAdmin), "")
	if err != nil || len(all) != 1 {
		t.Fatalf("admin's tokens: %+v, %v", all, err)
	}
	if err := ci.RevokeToken(ctx, all[0].ID); statusOf(err) != 404 {
		t.Errorf("a ci user revoking an admin's token: %v", err)
	}
	if err := ci.RevokeToken(ctx, "not-hex"); statusOf(err) != 400 {
		t.Errorf("a malformed ID: %v", err)
	}
	if err := adm.RevokeToken(ctx, current.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathPolicies, "bearer "+t2, ""); r.status != 401 {
		t.Errorf("a token an admin revoked: %d", r.status)
	}
	if _, err := e.apiClient(auth.RoleAgent).Tokens(ctx, "", ""); statusOf(err) != 403 {
		t.Errorf("an agent user listing tokens: %v", err)
	}
}

// Rotating an agent credential: the new one works at once, the old one
// until the overlap ends, and nothing but an admin may rotate.
func TestAgentCredentialRotation(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	old, err := e.auth.AgentToken(ctx, "shop-api")
	if err != nil {
		t.Fatal(err)
	}
	admin := e.apiClient(auth.RoleAdmin)
	rot, err := admin.RotateAgentToken(ctx, api.RotateAgentTokenRequest{TaskFamily: "shop-api", Overlap: "2h"})
	if err != nil || !strings.HasPrefix(rot.Token, "tga_") || rot.Older != 1 || !rot.OlderExpireAt.Equal(e.clock().Add(2*time.Hour)) {
		t.Fatalf("rotate: %+v, %v", rot, err)
	}
	for name, tok := range map[string]string{"new": rot.Token, "old": old} {
		if r := e.do("GET", api.PathAgentPolicy, "bearer "+tok, ""); r.status != 200 {
			t.Errorf("the %s credential inside the overlap: %d", name, r.status)
		}
	}
	e.advance(2 * time.Hour)
	if r := e.do("GET", api.PathAgentPolicy, "bearer "+old, ""); r.status != 401 {
		t.Errorf("the old credential after the overlap: %d", r.status)
	}
	if r := e.do("GET", api.PathAgentPolicy, "bearer "+rot.Token, ""); r.status != 200 {
		t.Errorf("the new credential after the overlap: %d", r.status)
	}
	list, err := admin.Tokens(ctx, "", "shop-api")
	if err != nil || len(list) != 2 {
		t.Errorf("the family's credentials: %+v, %v", list, err)
	}
	if _, err := admin.RotateAgentToken(ctx, api.RotateAgentTokenRequest{TaskFamily: "../etc"}); statusOf(err) != 400 {
		t.Errorf("rotating a bad family: %v", err)
	}
	if _, err := e.apiClient(auth.RoleDefenderManager).RotateAgentToken(ctx, api.RotateAgentTokenRequest{TaskFamily: "shop-api"}); statusOf(err) != 403 {
		t.Errorf("a defender-manager rotating: %v", err)
	}
}

// An agent-role user reads only its families' rules and files audits and
// inventories only under them.
func TestAgentUserBoundToFamilies(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	for _, r := range []policy.RuntimeRule{
		{Name: "web-only", Scope: policy.Scope{Tasks: []string{agentUserFamily}}, Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"nc"}}},
		{Name: "billing-only", Scope: policy.Scope{Tasks: []string{"billing"}}, Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"curl"}}},
		{Name: "worker-only", Scope: policy.Scope{Tasks: []string{"worker"}}, Processes: policy.ProcessPolicy{Effect: policy.EffectAlert, Denied: []string{"sh"}}},
	} {
		if _, err := admin.AddRuntimeRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.AddWAFRule(ctx, policy.WAFRule{Name: "billing-waf", Scope: policy.Scope{Tasks: []string{"billing"}}, ExternalPort: 80, AppPort: 8080,
		Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent}}); err != nil {
		t.Fatal(err)
	}
	names := func(body string) string {
		var p policy.Policy
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("policy %q: %v", body, err)
		}
		var n []string
		for _, r := range p.Runtime {
			n = append(n, r.Name)
		}
		for _, r := range p.WAF {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	// One family: its rules only.
	r := e.do("GET", api.PathAgentPolicy, basic(auth.RoleAgent), "")
	if r.status != 200 || names(r.body) != "web-only" {
		t.Errorf("the agent user bound to %s reads %d %s", agentUserFamily, r.status, r.body)
	}
	// Its audits are filed under its family whatever they say.
	batch := `{"audits":[{"id":"fam-1","kind":"process","effect":"alert","taskFamily":"billing","message":"x"}]}`
	if r := e.do("POST", api.PathAgentAudits, basic(auth.RoleAgent), batch); r.status != 202 {
		t.Fatalf("post audits: %d %s", r.status, r.body)
	}
	page, err := e.apiClient(auth.RoleAuditor).RuntimeAudits(ctx, api.AuditQuery{})
	if err != nil || len(page.Audits) != 1 || page.Audits[0].TaskFamily != agentUserFamily {
		t.Errorf("the audit was filed as %+v, %v; want under %s", page.Audits, err, agentUserFamily)
	}
	// Several families: the request names one of them.
	if _, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "fleet", Password: "fleet-password", Role: "agent", TaskFamilies: []string{"billing", "worker"}}); err != nil {
		t.Fatal(err)
	}
	fleet := "basic fleet fleet-password"
	if r := e.do("GET", api.PathAgentPolicy, fleet, ""); r.status != 403 || !strings.Contains(r.body, familyHeader) {
		t.Errorf("a multi-family agent user naming no family: %d %s", r.status, r.body)
	}
	if r := e.do("GET", api.PathAgentPolicy+"?family="+agentUserFamily, fleet, ""); r.status != 403 {
		t.Errorf("a family the user is not bound to: %d", r.status)
	}
	if r := e.do("GET", api.PathAgentPolicy+"?family=billing", fleet, ""); r.status != 200 || names(r.body) != "billing-only,billing-waf" {
		t.Errorf("?family=billing: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", e.url+api.PathAgentPolicy, nil)
	req.SetBasicAuth("fleet", "fleet-password")
	req.Header.Set(familyHeader, "worker")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var p policy.Policy
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(p.Runtime) != 1 || p.Runtime[0].Name != "worker-only" {
		t.Errorf("%s: worker: %d %+v", familyHeader, resp.StatusCode, p.Runtime)
	}
	// A user of the old kind, bound to nothing (made before families existed), may do nothing.
	hash, _ := auth.HashPassword("legacy-password", 4)
	if err := e.store.CreateUser(ctx, store.User{Username: "legacy", Role: "agent", PasswordHash: hash, CreatedAt: e.clock()}); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathAgentPolicy, "basic legacy legacy-password", ""); r.status != 403 || !strings.Contains(r.body, "bound to no task family") {
		t.Errorf("an agent user bound to nothing: %d %s", r.status, r.body)
	}
	if r := e.do("POST", api.PathAgentAudits, "basic legacy legacy-password", batch); r.status != 403 {
		t.Errorf("an agent user bound to nothing posting audits: %d", r.status)
	}
}
