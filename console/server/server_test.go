package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/sqlite"
	"github.com/taskguard/taskguard/console/taskimages"
	"github.com/taskguard/taskguard/internal/testenv"
	"golang.org/x/crypto/bcrypt"
)

// testEnv is the real console handler over HTTPS on loopback, on a real
// SQLite store, with a clock and a slow-down the test controls.
type testEnv struct {
	t      *testing.T
	url    string
	client *http.Client
	srv    *httptest.Server
	auth   *auth.Authenticator
	store  store.Store
	logs   *testenv.SyncBuffer
	dbPath string // the SQLite file of the store

	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

// passwords of the users every testEnv starts with, one per role.
var passwords = map[auth.Role]string{
	auth.RoleAdmin:           "admin-password",
	auth.RoleDefenderManager: "dm-password",
	auth.RoleCI:              "ci-password",
	auth.RoleAuditor:         "auditor-password",
	auth.RoleAgent:           "agent-password",
}

func userOf(r auth.Role) string { return "user-" + string(r) }

// agentUserFamily is the task family the test agent-role user is bound to.
const agentUserFamily = "shop-web"

func newTestEnv(t *testing.T, throttle auth.ThrottleConfig) *testEnv {
	t.Helper()
	return newTestEnvWith(t, throttle, nil)
}

// newTestEnvWith is newTestEnv with a task image matcher.
func newTestEnvWith(t *testing.T, throttle auth.ThrottleConfig, images *taskimages.Matcher) *testEnv {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "taskguard.db")
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newTestEnvOn(t, st, throttle, images)
	e.dbPath = dbPath
	return e
}

// newTestEnvOn is newTestEnvWith over a given store.
func newTestEnvOn(t *testing.T, st store.Store, throttle auth.ThrottleConfig, images *taskimages.Matcher) *testEnv {
	t.Helper()
	ctx := context.Background()
	e := &testEnv{t: t, store: st, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), logs: &testenv.SyncBuffer{}}
	e.auth = auth.New(auth.Config{
		Store:      st,
		BcryptCost: bcrypt.MinCost,
		Throttle:   throttle,
		Now:        e.clock,
		Sleep: func(_ context.Context, d time.Duration) {
			e.mu.Lock()
			e.sleeps = append(e.sleeps, d)
			e.mu.Unlock()
		},
	})
	for role, pw := range passwords {
		var fams []string
		if role == auth.RoleAgent {
			fams = []string{agentUserFamily}
		}
		if err := e.auth.CreateUser(ctx, userOf(role), pw, role, fams...); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = httptest.NewUnstartedServer(New(Config{Store: st, Auth: e.auth, Logger: logger, TaskImages: images}))
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.url, e.client = e.srv.URL, e.srv.Client()
	return e
}

func (e *testEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *testEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *testEnv) takeSleeps() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sleeps
	e.sleeps = nil
	return s
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request; cred is "basic USER PASS", "bearer TOKEN", a raw
// Authorization value, or "" for none.
func (e *testEnv) do(method, path, cred string, body string) response {
	e.t.Helper()
	return e.doWith(e.client, method, path, cred, body)
}

func (e *testEnv) doWith(c *http.Client, method, path, cred string, body string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch f := strings.Fields(cred); {
	case len(f) == 3 && f[0] == "basic":
		req.SetBasicAuth(f[1], f[2])
	case len(f) == 2 && f[0] == "bearer":
		req.Header.Set("Authorization", "Bearer "+f[1])
	case cred != "":
		req.Header.Set("Authorization", cred)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func basic(r auth.Role) string { return "basic " + userOf(r) + " " + passwords[r] }

func (e *testEnv) login(user, pw string) api.AuthenticateResponse {
	e.t.Helper()
	b, _ := json.Marshal(api.AuthenticateRequest{Username: user, Password: pw})
	resp := e.do("POST", api.PathAuthenticate, "", string(b))
	if resp.status != 200 {
		e.t.Fatalf("login %s: %d %s", user, resp.status, resp.body)
	}
	var out api.AuthenticateResponse
	if err := json.Unmarshal([]byte(resp.body), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func errorMessage(t *testing.T, body string) string {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not {\"error\": ...}: %v", body, err)
	}
	return e.Error
}

func TestPing(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	resp := e.do("GET", api.PathPing, "", "")
	if resp.status != 200 || resp.body != "OK" {
		t.Fatalf("ping = %d %q, want 200 OK", resp.status, resp.body)
	}
}

func TestAuthentication(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	adminToken := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin])
	expiring := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin])
	agentToken, err := e.auth.AgentToken(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	dmToken := e.login(userOf(auth.RoleDefenderManager), passwords[auth.RoleDefenderManager])

	tests := []struct {
		name       string
		method     string
		path       string
		cred       string
		body       string
		before     func()
		wantStatus int
		wantError  string // substring of the error message
	}{
		{name: "basic admin", method: "GET", path: api.PathUsers, cred: basic(auth.RoleAdmin), wantStatus: 200},
		{name: "bearer admin", method: "GET", path: api.PathUsers, cred: "bearer " + adminToken.Token, wantStatus: 200},
		{name: "bearer scheme case-insensitive", method: "GET", path: api.PathUsers, cred: "bEaReR " + adminToken.Token, wantStatus: 200},
		{name: "no credentials", method: "GET", path: api.PathUsers, wantStatus: 401, wantError: unauthorized},
		{name: "wrong password", method: "GET", path: api.PathUsers, cred: "basic " + userOf(auth.RoleAdmin) + " wrong-password", wantStatus: 401, wantError: unauthorized},
		{name: "unknown user", method: "GET", path: api.PathUsers, cred: "basic nobody admin-password", wantStatus: 401, wantError: unauthorized},
		{name: "another user's password", method: "GET", path: api.PathUsers, cred: "basic " + userOf(auth.RoleAdmin) + " " + passwords[auth.RoleCI], wantStatus: 401, wantError: unauthorized},
		{name: "garbage bearer", method: "GET", path: api.PathUsers, cred: "bearer tgu_not-a-token", wantStatus: 401, wantError: unauthorized},
		{name: "bearer without prefix", method: "GET", path: api.PathUsers, cred: "bearer abc", wantStatus: 401, wantError: unauthorized},
		{name: "malformed basic", method: "GET", path: api.PathUsers, cred: "Basic !!!notbase64", wantStatus: 401, wantError: unauthorized},
		{name: "unknown scheme", method: "GET", path: api.PathUsers, cred: "Digest username=x", wantStatus: 401, wantError: unauthorized},
		{name: "defender-manager may not list users", method: "GET", path: api.PathUsers, cred: basic(auth.RoleDefenderManager), wantStatus: 403, wantError: `role "defender-manager" may not manage users`},
		{name: "defender-manager token may not create users", method: "POST", path: api.PathUsers, cred: "bearer " + dmToken.Token,
			body: `{"username":"x","password":"xxxxxxxx","role":"admin"}`, wantStatus: 403, wantError: "may not manage users"},
		{name: "ci may not list users", method: "GET", path: api.PathUsers, cred: basic(auth.RoleCI), wantStatus: 403, wantError: `role "ci"`},
		{name: "auditor may not create users", method: "POST", path: api.PathUsers, cred: basic(auth.RoleAuditor),
			body: `{"username":"x","password":"xxxxxxxx","role":"admin"}`, wantStatus: 403, wantError: `role "auditor"`},
		{name: "agent user may not list users", method: "GET", path: api.PathUsers, cred: basic(auth.RoleAgent), wantStatus: 403, wantError: `role "agent"`},
		{name: "agent token may not list users", method: "GET", path: api.PathUsers, cred: "bearer " + agentToken, wantStatus: 403, wantError: `role "agent"`},
		// Last: it moves the clock past every token's lifetime.
		{name: "expired token", method: "GET", path: api.PathUsers, cred: "bearer " + expiring.Token,
			before: func() { e.advance(auth.DefaultTokenTTL + time.Second) }, wantStatus: 401, wantError: unauthorized},
	}
	var unauthorizedBodies []response
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			resp := e.do(tt.method, tt.path, tt.cred, tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			if tt.wantError != "" {
				if msg := errorMessage(t, resp.body); !strings.Contains(msg, tt.wantError) {
					t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
				}
			}
			if resp.status == 401 {
				if got := resp.header.Values("WWW-Authenticate"); len(got) != 2 || !strings.HasPrefix(got[0], "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want the Basic and Bearer challenges", got)
				}
				unauthorizedBodies = append(unauthorizedBodies, resp)
			}
		})
	}
	// Every 401 is the same answer: nothing tells a wrong password from an
	// unknown user or an expired token.
	for _, r := range unauthorizedBodies[1:] {
		if r.body != unauthorizedBodies[0].body {
			t.Errorf("401 bodies differ: %q vs %q", r.body, unauthorizedBodies[0].body)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "WWW-Authenticate"} {
			if strings.Join(r.header.Values(h), ";") != strings.Join(unauthorizedBodies[0].header.Values(h), ";") {
				t.Errorf("401 header %s differs: %q vs %q", h, r.header.Values(h), unauthorizedBodies[0].header.Values(h))
			}
		}
	}
}

func TestTokenLifetime(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tok := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin])
	if resp := e.do("GET", api.PathUsers, "bearer "+tok.Token, ""); resp.status != 200 {
		t.Fatalf("status %d", resp.status)
	}
	if !tok.ExpiresAt.Equal(e.clock().Add(auth.DefaultTokenTTL)) {
		t.Errorf("expiresAt = %v, want now + %v", tok.ExpiresAt, auth.DefaultTokenTTL)
	}
	e.advance(auth.DefaultTokenTTL - time.Millisecond)
	if resp := e.do("GET", api.PathUsers, "bearer "+tok.Token, ""); resp.status != 200 {
		t.Fatalf("just before expiry: %d, want 200", resp.status)
	}
	e.advance(time.Millisecond)
	if resp := e.do("GET", api.PathUsers, "bearer "+tok.Token, ""); resp.status != 401 {
		t.Fatalf("at expiry: %d, want 401", resp.status)
	}
}

func TestLogin(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string
	}{
		{"wrong password", `{"username":"user-admin","password":"nope-nope"}`, 401, unauthorized},
		{"unknown user", `{"username":"ghost","password":"admin-password"}`, 401, unauthorized},
		{"empty body", ``, 400, "request body is empty"},
		{"truncated", `{"username":"user-admin",`, 400, "ends before the value is complete"},
		{"syntax", `{"username" "x"}`, 400, "not valid JSON: invalid character '\"' after object key (at byte 13)"},
		{"wrong type", `{"username": 5, "password": "x"}`, 400, `field "username" must be a JSON string, not number`},
		{"unknown field", `{"user":"a","password":"b"}`, 400, `unknown field "user"`},
		{"array", `[]`, 400, "must be a JSON object, not a JSON array"},
		{"two values", `{"username":"a","password":"b"} {}`, 400, "more data after the JSON value"},
		{"missing password", `{"username":"user-admin"}`, 400, `needs both "username" and "password"`},
		{"null", `null`, 400, `needs both`},
		{"too large", `{"username":"` + strings.Repeat("a", smallBody) + `","password":"x"}`, 413, "larger than this endpoint's limit of 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do("POST", api.PathAuthenticate, "", tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			if msg := errorMessage(t, resp.body); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
		})
	}
	t.Run("streamed too large", func(t *testing.T) {
		// No Content-Length: the limit applies while reading.
		req, _ := http.NewRequest("POST", e.url+api.PathAuthenticate, io.MultiReader(strings.NewReader(`{"username":"`), strings.NewReader(strings.Repeat("a", 2*smallBody))))
		req.ContentLength = -1
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status = %d, want 413", resp.StatusCode)
		}
	})
	t.Run("token works", func(t *testing.T) {
		tok := e.login(userOf(auth.RoleAuditor), passwords[auth.RoleAuditor])
		if !strings.HasPrefix(tok.Token, "tgu_") || len(tok.Token) < 40 {
			t.Errorf("token %q does not look like a user token", tok.Token)
		}
		if resp := e.do("GET", api.PathUsers, "bearer "+tok.Token, ""); resp.status != 403 {
			t.Errorf("auditor token on users: %d, want 403 (authenticated, not allowed)", resp.status)
		}
	})
}

func TestSlowDown(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{FreeFailures: 2, BaseDelay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond, Lockout: 6, Window: time.Minute})
	admin := userOf(auth.RoleAdmin)
	wrong := "basic " + admin + " wrong-password"
	for i := range 6 {
		if resp := e.do("GET", api.PathUsers, wrong, ""); resp.status != 401 {
			t.Fatalf("failure %d: status %d, want 401", i+1, resp.status)
		}
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}
	if got := e.takeSleeps(); fmtDurations(got) != fmtDurations(want) {
		t.Fatalf("delays before the answers = %v, want %v", got, want)
	}

	// Locked: even the right password is refused without being checked.
	resp := e.do("GET", api.PathUsers, basic(auth.RoleAdmin), "")
	if resp.status != 429 || resp.header.Get("Retry-After") != "60" {
		t.Fatalf("after %d failures: %d Retry-After=%q (%s), want 429 Retry-After=60", 6, resp.status, resp.header.Get("Retry-After"), resp.body)
	}
	if msg := errorMessage(t, resp.body); !strings.Contains(msg, "too many failed logins") {
		t.Errorf("429 message %q", msg)
	}
	b, _ := json.Marshal(api.AuthenticateRequest{Username: admin, Password: passwords[auth.RoleAdmin]})
	if resp := e.do("POST", api.PathAuthenticate, "", string(b)); resp.status != 429 {
		t.Errorf("authenticate while locked: %d, want 429", resp.status)
	}

	// The lock is per user and source: another user, and the same user from
	// another loopback address, still get in.
	if resp := e.do("GET", api.PathUsers, basic(auth.RoleDefenderManager), ""); resp.status != 403 {
		t.Errorf("another user while admin is locked: %d, want 403 (authenticated)", resp.status)
	}
	if resp := e.doWith(clientFrom(e, "127.0.0.2"), "GET", api.PathUsers, basic(auth.RoleAdmin), ""); resp.status != 200 {
		t.Errorf("admin from 127.0.0.2 while locked on 127.0.0.1: %d, want 200", resp.status)
	}

	// After the window the count is forgotten.
	e.advance(time.Minute)
	if resp := e.do("GET", api.PathUsers, basic(auth.RoleAdmin), ""); resp.status != 200 {
		t.Fatalf("after the window: %d, want 200", resp.status)
	}
	// A success resets the count: the next failures are free again.
	e.takeSleeps()
	e.do("GET", api.PathUsers, wrong, "")
	e.do("GET", api.PathUsers, basic(auth.RoleAdmin), "")
	e.do("GET", api.PathUsers, wrong, "")
	e.do("GET", api.PathUsers, wrong, "")
	if got := e.takeSleeps(); fmtDurations(got) != "[0s,0s,0s]" {
		t.Errorf("delays after a success = %v, want [0s 0s 0s]", got)
	}
}

func fmtDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return "[" + strings.Join(s, ",") + "]"
}

// clientFrom returns a client of e's server whose connections come from ip.
func clientFrom(e *testEnv, ip string) *http.Client {
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr}
}

func TestSlowDownIsReal(t *testing.T) {
	// With the real sleep, a slowed failure takes at least the delay on the wire.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "taskguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := auth.New(auth.Config{Store: st, BcryptCost: bcrypt.MinCost, Throttle: auth.ThrottleConfig{FreeFailures: 1, BaseDelay: 300 * time.Millisecond}})
	srv := httptest.NewUnstartedServer(New(Config{Store: st, Auth: a, Logger: slog.New(slog.DiscardHandler)}))
	srv.StartTLS()
	defer srv.Close()
	timed := func() (int, time.Duration) {
		req, _ := http.NewRequest("GET", srv.URL+api.PathUsers, nil)
		req.SetBasicAuth("someone", "wrong-password")
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	timed() // the free failure
	status, took := timed()
	if status != 401 || took < 300*time.Millisecond {
		t.Fatalf("second failure: %d after %v, want 401 after at least 300ms", status, took)
	}
}

func TestUsers(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	admin := basic(auth.RoleAdmin)
	resp := e.do("POST", api.PathUsers, admin, `{"username":"jenkins","password":"jenkins-secret-1","role":"defender-manager"}`)
	if resp.status != 201 {
		t.Fatalf("create: %d %s", resp.status, resp.body)
	}
	var u api.User
	json.Unmarshal([]byte(resp.body), &u)
	if u.Username != "jenkins" || u.Role != "defender-manager" || !u.CreatedAt.Equal(e.clock()) {
		t.Errorf("created user = %+v", u)
	}
	if resp := e.do("GET", api.PathUsers, "basic jenkins jenkins-secret-1", ""); resp.status != 403 {
		t.Errorf("the new defender-manager on users: %d, want 403", resp.status)
	}

	tests := []struct {
		name, body string
		wantStatus int
		wantError  string
	}{
		{"duplicate", `{"username":"jenkins","password":"another-pass","role":"ci"}`, 409, `user "jenkins" already exists`},
		{"unknown role", `{"username":"x1","password":"xxxxxxxxxx","role":"root"}`, 400, `invalid role "root": the roles are admin, defender-manager, ci, auditor, agent`},
		{"no role", `{"username":"x1","password":"xxxxxxxxxx"}`, 400, `invalid role ""`},
		{"short password", `{"username":"x1","password":"short","role":"ci"}`, 400, "password: it must be 8 to 72 bytes long"},
		{"long password", `{"username":"x1","password":"` + strings.Repeat("p", 73) + `","role":"ci"}`, 400, "8 to 72 bytes"},
		{"bad username", `{"username":"a b","password":"xxxxxxxxxx","role":"ci"}`, 400, `invalid username "a b"`},
		{"unknown field", `{"username":"x1","password":"xxxxxxxxxx","role":"ci","admin":true}`, 400, `unknown field "admin"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do("POST", api.PathUsers, admin, tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			if msg := errorMessage(t, resp.body); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
		})
	}

	resp = e.do("GET", api.PathUsers, admin, "")
	if resp.status != 200 {
		t.Fatalf("list: %d", resp.status)
	}
	for _, leak := range []string{"hash", "password", "$2a$", "jenkins-secret-1"} {
		if strings.Contains(strings.ToLower(resp.body), strings.ToLower(leak)) {
			t.Errorf("user list contains %q: %s", leak, resp.body)
		}
	}
	var users []api.User
	if err := json.Unmarshal([]byte(resp.body), &users); err != nil || len(users) != len(passwords)+1 {
		t.Fatalf("list = %s (%v), want %d users", resp.body, err, len(passwords)+1)
	}
}

func TestRouting(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	if resp := e.do("GET", "/api/v1/nope", "", ""); resp.status != 404 || !strings.Contains(errorMessage(t, resp.body), "no such endpoint: /api/v1/nope") {
		t.Errorf("unknown path: %d %s", resp.status, resp.body)
	}
	resp := e.do("GET", api.PathAuthenticate, "", "")
	if resp.status != 405 || resp.header.Get("Allow") != "POST" {
		t.Errorf("GET authenticate: %d Allow=%q, want 405 Allow=POST", resp.status, resp.header.Get("Allow"))
	}
	resp = e.do("DELETE", api.PathUsers, basic(auth.RoleAdmin), "")
	if resp.status != 405 || resp.header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE users: %d Allow=%q, want 405 Allow=GET, POST", resp.status, resp.header.Get("Allow"))
	}
	if resp := e.do("POST", api.PathPing, "", "x"); resp.status != 405 {
		t.Errorf("POST ping: %d, want 405", resp.status)
	}
}

func TestRequestIDAndHeaders(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	req, _ := http.NewRequest("GET", e.url+api.PathPing, nil)
	req.Header.Set("X-Request-ID", "build-42.step_3")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "build-42.step_3" {
		t.Errorf("X-Request-ID = %q, want the caller's", got)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("security headers missing: %v", resp.Header)
	}
	req.Header.Set("X-Request-ID", "bad id\twith spaces")
	resp, _ = e.client.Do(req)
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); len(got) != 16 {
		t.Errorf("X-Request-ID for a bad one = %q, want a fresh 16-hex id", got)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tok := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin])
	e.do("GET", api.PathUsers, "bearer "+tok.Token, "")
	e.do("GET", api.PathUsers+"?secret=query-value", "basic "+userOf(auth.RoleAdmin)+" typo-password", "")
	e.do("POST", api.PathUsers, basic(auth.RoleAdmin), `{"username":"newbie","password":"newbie-password","role":"ci"}`)
	logs := e.logs.String()
	for _, secret := range []string{tok.Token, passwords[auth.RoleAdmin], "typo-password", "newbie-password", "query-value", "Authorization", "Basic "} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
	// One structured line per request, with who made it.
	var sawUser bool
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "request" && rec["route"] == "users.list" && rec["user"] == userOf(auth.RoleAdmin) && rec["status"] == float64(200) {
			sawUser = true
		}
	}
	if !sawUser {
		t.Errorf("no request line names the admin:\n%s", logs)
	}
}

func TestRecoverPanic(t *testing.T) {
	var logs testenv.SyncBuffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	h := s.chain(route{name: "boom", handler: func(http.ResponseWriter, *http.Request) { panic("boom") }})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal error") {
		t.Fatalf("panicking handler: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
}
