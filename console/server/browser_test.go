package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"

	"github.com/taskguard/taskguard/internal/testenv"
)

// chromiumPath is Debian's chromium binary.
const chromiumPath = "/usr/lib/chromium/chromium"

// browser starts headless Chromium for t, or skips when it is not installed
// (CI installs it: CI=true makes its absence a failure).
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Skip(t, "chromium is not installed (apt-get install chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The test console's certificate is httptest's own.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1440, 900),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go: $TASKGUARD_ARTIFACTS or a temporary directory.
func artifacts(t *testing.T) string {
	dir := os.Getenv("TASKGUARD_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// step runs actions with a bound, naming the step when it fails.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// TestBrowserWalkthrough drives the pages in real headless Chromium: sign in,
// add a runtime rule, generate a protected task, see an audit and a scan.
func TestBrowserWalkthrough(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := browser(t)
	dir := artifacts(t)
	bg := context.Background()

	// A page without a session goes to the login page, which comes back.
	step(t, ctx, "open the runtime policy page",
		chromedp.Navigate(e.url+"/policies/runtime"),
		chromedp.WaitVisible(chromedp.CSS("#signin")),
		chromedp.SendKeys(chromedp.CSS("#username"), userOf(auth.RoleAdmin)),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong password"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS(".alert.error")),
	)
	if msg := text(t, ctx, ".alert.error"); !strings.Contains(msg, "Wrong user name or password") {
		t.Errorf("a wrong password shows %q", msg)
	}
	screenshot(t, ctx, dir, "01-login")
	step(t, ctx, "sign in",
		chromedp.SetValue(chromedp.CSS("#password"), passwords[auth.RoleAdmin]),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#runtime-form")),
	)

	// Add the seeds' rule through the form.
	step(t, ctx, "add a runtime rule",
		chromedp.SendKeys(chromedp.CSS("#rule-name"), "block-mkdir"),
		chromedp.SendKeys(chromedp.CSS("#rule-denied"), "mkdir"),
		chromedp.SendKeys(chromedp.CSS("#rule-domains"), "yahoo.com, google.com"),
		chromedp.Click(chromedp.CSS("#add-rule")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-rule="block-mkdir"]`)),
	)
	screenshot(t, ctx, dir, "02-runtime-policy")
	p, err := e.apiClient(auth.RoleAuditor).Policy(bg)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.RuntimeFor(policy.Identity{TaskFamily: "any"}); r == nil || r.Name != "block-mkdir" ||
		r.Processes.Effect != policy.EffectPrevent || strings.Join(r.Processes.Denied, ",") != "mkdir" ||
		strings.Join(r.Network.DeniedDomains, ",") != "yahoo.com,google.com" {
		t.Fatalf("the form saved %+v", p.Runtime)
	}
	// Edit it: network effect to alert.
	step(t, ctx, "edit the runtime rule",
		chromedp.Click(chromedp.CSS(`tr[data-rule="block-mkdir"] button[data-edit]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="networkEffect"]`), "alert"),
		chromedp.Click(chromedp.CSS("#add-rule")),
	)
	// The page reloads after the save; wait for the new revision on it.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rev, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("#revision")))
		cancel()
		if err == nil && rev == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed revision 2 after the edit (last %q, %v)", rev, err)
		}
	}
	p, err = e.apiClient(auth.RoleAuditor).Policy(bg)
	if err != nil || len(p.Runtime) != 1 || p.Runtime[0].Network.Effect != policy.EffectAlert || p.Runtime[0].Processes.Effect != policy.EffectPrevent ||
		strings.Join(p.Runtime[0].Network.DeniedDomains, ",") != "yahoo.com,google.com" {
		t.Fatalf("after the edit: %+v, %v", p.Runtime, err)
	}
	hist, err := e.apiClient(auth.RoleAdmin).PolicyHistory(bg)
	if err != nil || len(hist) != 2 || hist[0].Actor != userOf(auth.RoleAdmin) || hist[0].Action != "update runtime rule" {
		t.Errorf("the trail records %+v, %v; want the signed-in admin's add and update", hist, err)
	}

	// Generate a protected task from the seeds' sample.
	task := taskFile(t, "seeds-sample.json")
	step(t, ctx, "generate a protected task",
		chromedp.Navigate(e.url+"/protect"),
		chromedp.WaitVisible(chromedp.CSS("#task-in")),
		chromedp.SetValue(chromedp.CSS("#task-in"), task),
		chromedp.Click(chromedp.CSS("#protect")),
	)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := chromedp.Run(pctx, chromedp.Poll[string](`document.getElementById("task-out").value`))
	cancel()
	if err != nil {
		t.Fatalf("the protected task never appeared: %v (status %q)", err, text(t, ctx, "#protect-status"))
	}
	prot := parseProtected(t, out)
	if len(prot.ContainerDefinitions) != 2 || prot.ContainerDefinitions[1].Name != "taskguard-defender" {
		t.Fatalf("the page shows a task with containers %+v", prot.ContainerDefinitions)
	}
	if addr := prot.env("taskguard-defender", "TASKGUARD_CONSOLE"); addr == "" && !strings.Contains(out, strings.TrimPrefix(e.url, "https://")) {
		t.Errorf("the protected task does not name this console (%s)", e.url)
	}
	screenshot(t, ctx, dir, "03-protect")

	// A defender reports; the audit shows in the list, filtered by text.
	agent := e.agentClient("seeds-sample")
	now := time.Now().UTC()
	if _, err := agent.PostAudits(bg, api.AuditBatch{Audits: []api.Audit{
		{ID: "b1", Time: now.Add(-time.Minute), TaskID: "arn:aws:ecs:eu-west-1:123456789012:task/c/abc", Container: "web", Kind: api.AuditProcess,
			Effect: policy.EffectPrevent, Rule: "block-mkdir", Severity: "high",
			Message: "/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir test",
			Process: &api.ProcessDetail{Path: "/bin/mkdir", Parent: "/bin/dash", Argv: []string{"mkdir", "test"}}},
		{ID: "b2", Time: now, TaskID: "arn:aws:ecs:eu-west-1:123456789012:task/c/abc", Container: "web", Kind: api.AuditDNS,
			Effect: policy.EffectPrevent, Rule: "block-mkdir", Message: "DNS resolution of suspicious name yahoo.com",
			Network: &api.NetworkDetail{Direction: "dns", Domain: "yahoo.com"}},
		{ID: "b3", Time: now, Container: "web", Kind: api.AuditWAF, Effect: policy.EffectPrevent, Rule: "web-waf",
			Message: "SQL injection detected in query parameter id",
			WAF:     &api.WAFDetail{EventID: "e1", Method: "GET", Path: "/items?id=1' OR '1'='1", Source: "203.0.113.7", Protections: []string{"sqli"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "all runtime audits",
		chromedp.Navigate(e.url+"/audits/runtime"),
		chromedp.WaitVisible(chromedp.CSS("#audits")),
	)
	screenshot(t, ctx, dir, "04-runtime-audits")
	step(t, ctx, "filter the audits",
		chromedp.SetValue(chromedp.CSS(`input[name="q"]`), "yahoo"),
		chromedp.Submit(chromedp.CSS(`input[name="q"]`)),
		chromedp.WaitVisible(chromedp.CSS("#audits")),
	)
	if body := text(t, ctx, "#audits tbody"); !strings.Contains(body, "DNS resolution of suspicious name yahoo.com") || strings.Contains(body, "mkdir launched") {
		t.Errorf("the audits filtered by yahoo show:\n%s", body)
	}
	step(t, ctx, "WAF audits", chromedp.Navigate(e.url+"/audits/waf"), chromedp.WaitVisible(chromedp.CSS("#audits")))
	if body := text(t, ctx, "#audits tbody"); !strings.Contains(body, "203.0.113.7") {
		t.Errorf("the WAF audits show:\n%s", body)
	}

	// A scan from CI, in the list and in detail.
	rep := ciReport(t, "registry.example.com/seeds/web:1.4", "CRITICAL")
	sc, err := e.apiClient(auth.RoleCI).PublishScan(bg, rep)
	if err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "scan list", chromedp.Navigate(e.url+"/scans"), chromedp.WaitVisible(chromedp.CSS("table.data")))
	if body := text(t, ctx, "table.data"); !strings.Contains(body, "registry.example.com/seeds/web:1.4") {
		t.Errorf("the scan list shows:\n%s", body)
	}
	screenshot(t, ctx, dir, "05-scans")
	step(t, ctx, "scan detail", chromedp.Navigate(e.url+"/scans/"+sc.ID), chromedp.WaitVisible(chromedp.CSS(".facts")))
	if body := text(t, ctx, "main"); !strings.Contains(body, "CVE-2024-0001") || !strings.Contains(body, "blocked") {
		t.Errorf("the scan page shows:\n%s", body)
	}
	screenshot(t, ctx, dir, "06-scan")

	// WAF editor: add a rule through the form.
	step(t, ctx, "add a WAF rule",
		chromedp.Navigate(e.url+"/policies/waf"),
		chromedp.WaitVisible(chromedp.CSS("#waf-form")),
		chromedp.SendKeys(chromedp.CSS(`#waf-form input[name="name"]`), "web-waf"),
		chromedp.Click(chromedp.CSS(`#waf-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.data")),
	)
	waf, _, err := e.apiClient(auth.RoleAuditor).WAFRules(bg)
	if err != nil || len(waf) != 1 || waf[0].ExternalPort != 80 || waf[0].AppPort != 8080 || waf[0].Protections[policy.ProtectionSQLi] != policy.EffectPrevent {
		t.Errorf("the WAF form saved %+v, %v", waf, err)
	}
	screenshot(t, ctx, dir, "07-waf-policy")

	step(t, ctx, "overview", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS(".tiles")))
	if body := text(t, ctx, "main"); !strings.Contains(body, "seeds-sample") || !strings.Contains(body, "registry.example.com/seeds/web:1.4") {
		t.Errorf("the overview shows:\n%s", body)
	}
	screenshot(t, ctx, dir, "08-overview")
	t.Logf("screenshots in %s", dir)
}

// A session cookie alone cannot change anything: another site's form or
// script cannot add the CSRF header.
func TestSessionCookieNeedsCSRFHeader(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tok := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin]).Token
	rule, _ := json.Marshal(policy.RuntimeRule{Name: "r"})
	cookie := "tg_session=" + tok
	send := func(csrf bool) int {
		t.Helper()
		req, _ := newRequest("POST", e.url+api.PathRuntimePolicy, string(rule))
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Content-Type", "application/json")
		if csrf {
			req.Header.Set(csrfHeader, "1")
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(false); code != 401 {
		t.Errorf("a cookie without the CSRF header: %d, want 401", code)
	}
	if code := send(true); code != 201 {
		t.Errorf("a cookie with the CSRF header: %d, want 201", code)
	}
	// Reading with the cookie works (pages, CSV export links).
	req, _ := newRequest("GET", e.url+api.PathRuntimeAudits+"?format=csv", "")
	req.Header.Set("Cookie", cookie)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("CSV export with the cookie: %d", resp.StatusCode)
	}
	// Pages without a session redirect to the login page, keeping the target.
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Get(e.url + "/audits/runtime?q=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login?next="+url.QueryEscape("/audits/runtime?q=x") {
		t.Errorf("a page without a session: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The login form never redirects off the console.
	if got := safeNext("//evil.example/x"); got != "/" {
		t.Errorf("safeNext(//evil.example/x) = %q", got)
	}
}

func newRequest(method, u, body string) (*http.Request, error) {
	return http.NewRequest(method, u, strings.NewReader(body))
}
