package server

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
)

// signIn signs the browser in as role through the login form.
func signIn(t *testing.T, ctx context.Context, e *testEnv, role auth.Role, page, waitFor string) {
	t.Helper()
	step(t, ctx, "sign in as "+string(role),
		chromedp.Navigate(e.url+page),
		chromedp.WaitVisible(chromedp.CSS("#signin")),
		chromedp.SendKeys(chromedp.CSS("#username"), userOf(role)),
		chromedp.SetValue(chromedp.CSS("#password"), passwords[role]),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS(waitFor)),
	)
}

// waitRevision waits until the page (which reloads after a save) shows the
// policy revision want in #revision and its script has set up the buttons.
func waitRevision(t *testing.T, ctx context.Context, want int64) {
	t.Helper()
	waitPage(t, ctx, fmt.Sprintf(`(document.getElementById("revision") || {}).textContent === "%d"`, want))
}

// waitPage waits until expr holds on a page whose script has set up its
// buttons. A reload destroys the page's script context while the poll
// runs, so a failed poll is tried again until the deadline.
func waitPage(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	expr = `document.body && document.body.dataset.ready === "1" && (` + expr + `)`
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		_, err := chromedp.Run(pctx, chromedp.Poll[chromedp.Void](expr))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("the page never came to %s: %v\n%s", expr, err, body)
		}
	}
}

// confirmAll makes window.confirm answer yes on the current page.
var confirmAll = chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`)

// setJSON types a whole rule into the editor's JSON view, as a user pasting it would.
func setJSON(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(sel), value),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).dispatchEvent(new Event("input", {bubbles: true}))`, sel)),
	)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The web editors keep every field of a rule: Edit → Save through the form
// changes only what the form changed; the JSON view edits the fields the
// form does not show; invalid JSON is refused before anything is sent; and
// Delete addresses the rule by its percent-encoded name, so "a/b" and
// "../../firewall/app-embedded/shop-waf" delete that runtime rule and
// nothing else.
func TestBrowserEditorsRoundTrip(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	bg := context.Background()
	admin := e.apiClient(auth.RoleAdmin)

	full := policy.RuntimeRule{
		Name:  "full",
		Scope: policy.Scope{Tasks: []string{"shop-*"}, Containers: []string{"app"}, Images: []string{"registry.example.com/shop/*"}},
		Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent,
			Allowed: []string{"/usr/local/bin/shop", "/bin/sh"}},
		Network: policy.NetworkPolicy{Effect: policy.EffectPrevent,
			AllowedDomains:        []string{"api.example.com", "*.amazonaws.com"},
			DeniedOutbound:        []policy.Destination{{CIDR: "169.254.169.254/32"}, {CIDR: "10.0.0.0/8", Ports: []policy.PortRange{{Start: 22, End: 22}, {Start: 3300, End: 3310}}}},
			AllowedListeningPorts: []policy.PortRange{{Start: 8080, End: 8080}, {Start: 9000, End: 9100}},
			DeniedListeningPorts:  []policy.PortRange{{Start: 22, End: 22}},
			AllowedOutbound:       []policy.Destination{{CIDR: "0.0.0.0/0", Ports: []policy.PortRange{{Start: 443, End: 443}}}},
		},
	}
	slash := policy.RuntimeRule{Name: "a/b", Processes: policy.ProcessPolicy{Effect: policy.EffectAlert, Denied: []string{"nc"}}}
	traversal := policy.RuntimeRule{Name: "../../firewall/app-embedded/shop-waf", Processes: policy.ProcessPolicy{Effect: policy.EffectAlert, Denied: []string{"wget"}}}
	shopWAF := policy.WAFRule{
		Name: "shop-waf", Scope: policy.Scope{Tasks: []string{"shop-*"}, Containers: []string{"web"}},
		ExternalPort: 80, AppPort: 8080, Detection: policy.WAFDetectionCRS,
		Protections: map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent, policy.ProtectionXSS: policy.EffectAlert},
		Exceptions: []policy.WAFException{
			{Path: "/search*", Parameter: "q", Protections: []policy.Protection{policy.ProtectionXSS}},
			{Path: "/healthz"},
		},
	}
	for _, r := range []policy.RuntimeRule{full, slash, traversal} {
		if _, err := admin.AddRuntimeRule(bg, r); err != nil {
			t.Fatalf("add %s: %v", r.Name, err)
		}
	}
	if _, err := admin.AddWAFRule(bg, shopWAF); err != nil {
		t.Fatal(err)
	}
	rev := int64(4)

	ctx := browser(t)
	signIn(t, ctx, e, auth.RoleAdmin, "/policies/runtime", "#runtime-form")

	// Edit → Save through the form: only the network effect changes.
	step(t, ctx, "edit the full runtime rule",
		chromedp.Click(chromedp.CSS(`tr[data-rule="full"] button[data-edit]`)),
		chromedp.WaitVisible(chromedp.CSS(".cancel-edit")),
		chromedp.SetValue(chromedp.CSS(`select[name="networkEffect"]`), "alert"),
		chromedp.Click(chromedp.CSS("#add-rule")),
	)
	rev++
	waitRevision(t, ctx, rev)
	want := full
	want.Network.Effect = policy.EffectAlert
	rules, _, err := admin.RuntimeRules(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || !reflect.DeepEqual(rules[0], want) {
		t.Fatalf("Edit → Save through the form stored\n%s\nwant\n%s", mustJSON(t, rules[0]), mustJSON(t, want))
	}

	// The JSON view: invalid JSON disables Save and says why.
	step(t, ctx, "edit the rule's JSON",
		chromedp.Click(chromedp.CSS(`tr[data-rule="full"] button[data-edit]`)),
		chromedp.WaitVisible(chromedp.CSS(".cancel-edit")),
		setJSON("#runtime-form textarea.rule-json", `{"name": "full", "processes": `),
		chromedp.Poll[chromedp.Void](`document.querySelector("#add-rule").disabled`),
	)
	if msg := text(t, ctx, "#runtime-form .json-status"); !strings.Contains(msg, "not valid") {
		t.Errorf("invalid JSON shows %q", msg)
	}
	// A field the form does not show, edited in the JSON view, reaches the
	// form's fields too and is saved with them.
	edited := want
	edited.Network.AllowedListeningPorts = []policy.PortRange{{Start: 8443, End: 8443}}
	edited.Processes.Denied = []string{"mkdir"}
	edited.Processes.Allowed = nil
	step(t, ctx, "save the JSON view",
		setJSON("#runtime-form textarea.rule-json", mustJSON(t, edited)),
		chromedp.Poll[chromedp.Void](`!document.querySelector("#add-rule").disabled && document.querySelector("#rule-denied").value === "mkdir"`),
		chromedp.Click(chromedp.CSS("#add-rule")),
	)
	rev++
	waitRevision(t, ctx, rev)
	if rules, _, err = admin.RuntimeRules(bg); err != nil || !reflect.DeepEqual(rules[0], edited) {
		t.Fatalf("the JSON view stored\n%s (%v)\nwant\n%s", mustJSON(t, rules[0]), err, mustJSON(t, edited))
	}

	// A rule the server refuses: the page says which field, nothing is saved.
	step(t, ctx, "an invalid rule",
		chromedp.Click(chromedp.CSS(`tr[data-rule="full"] button[data-edit]`)),
		chromedp.WaitVisible(chromedp.CSS(".cancel-edit")),
		setJSON("#runtime-form textarea.rule-json", `{"name":"full","network":{"effect":"prevent","allowedListeningPorts":["99999"]}}`),
		chromedp.Click(chromedp.CSS("#add-rule")),
		chromedp.Poll[chromedp.Void](`document.querySelector("#runtime-form .actions .status").className.includes("error")`),
	)
	if msg := text(t, ctx, "#runtime-form .actions .status"); !strings.Contains(msg, "allowedListeningPorts") && !strings.Contains(msg, "99999") {
		t.Errorf("a refused rule shows %q", msg)
	}
	if r, _ := admin.Policy(bg); r.Revision != rev {
		t.Errorf("a refused rule changed the policy to revision %d", r.Revision)
	}

	// Delete by name: the traversal name deletes that runtime rule, not the WAF rule shop-waf.
	step(t, ctx, "delete the rule named ../../firewall/app-embedded/shop-waf",
		chromedp.Navigate(e.url+"/policies/runtime"),
		chromedp.WaitVisible(chromedp.CSS("#runtime-form")),
		confirmAll,
		chromedp.Click(chromedp.CSS(`tr[data-rule="../../firewall/app-embedded/shop-waf"] button[data-delete]`)),
	)
	rev++
	waitRevision(t, ctx, rev)
	step(t, ctx, "delete the rule named a/b",
		confirmAll,
		chromedp.Click(chromedp.CSS(`tr[data-rule="a/b"] button[data-delete]`)),
	)
	rev++
	waitRevision(t, ctx, rev)
	p, err := admin.Policy(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runtime) != 1 || p.Runtime[0].Name != "full" {
		t.Errorf("after the deletes the runtime rules are %s", mustJSON(t, p.Runtime))
	}
	if len(p.WAF) != 1 || !reflect.DeepEqual(p.WAF[0], shopWAF) {
		t.Fatalf("deleting runtime rules touched the WAF rules: %s", mustJSON(t, p.WAF))
	}

	// WAF: Edit → Save keeps the exceptions and the scope the form does not
	// show, and the detection setting it does.
	step(t, ctx, "edit the WAF rule",
		chromedp.Navigate(e.url+"/policies/waf"),
		chromedp.WaitVisible(chromedp.CSS("#waf-form")),
		chromedp.Click(chromedp.CSS(`tr[data-rule="shop-waf"] button[data-edit]`)),
		chromedp.WaitVisible(chromedp.CSS(".cancel-edit")),
		chromedp.SetValue(chromedp.CSS(`select[name="prot-cmdi"]`), "prevent"),
		chromedp.Click(chromedp.CSS(`#waf-form button[type="submit"]`)),
	)
	rev++
	waitRevision(t, ctx, rev)
	wantWAF := shopWAF
	wantWAF.Protections = map[policy.Protection]policy.Effect{}
	for _, pr := range policy.Protections {
		wantWAF.Protections[pr] = policy.EffectDisable
	}
	wantWAF.Protections[policy.ProtectionSQLi] = policy.EffectPrevent
	wantWAF.Protections[policy.ProtectionXSS] = policy.EffectAlert
	wantWAF.Protections[policy.ProtectionCmdi] = policy.EffectPrevent
	waf, _, err := admin.WAFRules(bg)
	if err != nil || len(waf) != 1 || !reflect.DeepEqual(waf[0], wantWAF) {
		t.Fatalf("WAF Edit → Save stored\n%s (%v)\nwant\n%s", mustJSON(t, waf), err, mustJSON(t, wantWAF))
	}
}

// The CI and image rule pages edit their lists with the same round trip,
// and the history page lists every change with a link to the revision.
func TestBrowserCIImagesHistoryPages(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	bg := context.Background()
	admin := e.apiClient(auth.RoleAdmin)
	expires, _ := policy.ParseDate("2027-06-30")
	ci := policy.CIRule{Name: "prod/images", Scope: policy.Scope{Images: []string{"registry.example.com/shop/*"}},
		Vulnerabilities: policy.VulnRule{BlockThreshold: "CRITICAL", AlertThreshold: "HIGH", GraceDays: 7,
			Exceptions: []policy.Exception{{ID: "CVE-2024-0001", Package: "openssl", Reason: "not reachable", Expires: expires}}},
		Compliance: policy.ComplianceRule{Default: policy.ActionAlert, Checks: map[string]policy.Action{"TG-IMG-001": policy.ActionBlock}}}
	img := policy.ImageRule{Name: "running", Scope: policy.Scope{Tasks: []string{"shop-*"}},
		Vulnerabilities: policy.VulnRule{AlertThreshold: "CRITICAL",
			Exceptions: []policy.Exception{{ID: "CVE-2024-0002", Reason: "vendor says no", Expires: expires}}}}
	if r := e.do("POST", api.PathCIPolicy, basic(auth.RoleAdmin), mustJSON(t, ci)); r.status != 201 {
		t.Fatalf("add CI rule: %d %s", r.status, r.body)
	}
	if r := e.do("POST", api.PathImagePolicy, basic(auth.RoleAdmin), mustJSON(t, img)); r.status != 201 {
		t.Fatalf("add image rule: %d %s", r.status, r.body)
	}
	ctx := browser(t)
	signIn(t, ctx, e, auth.RoleAdmin, "/policies/ci", "#ci-form")
	step(t, ctx, "edit the CI rule",
		chromedp.Click(chromedp.CSS(`tr[data-rule="prod/images"] button[data-edit]`)),
		chromedp.WaitVisible(chromedp.CSS(".cancel-edit")),
		chromedp.SetValue(chromedp.CSS(`#ci-form select[name="blockThreshold"]`), "HIGH"),
		chromedp.Click(chromedp.CSS(`#ci-form button[type="submit"]`)),
	)
	waitRevision(t, ctx, 3)
	p, err := admin.Policy(bg)
	if err != nil {
		t.Fatal(err)
	}
	wantCI := ci
	wantCI.Vulnerabilities.BlockThreshold = "HIGH"
	if len(p.CI) != 1 || !reflect.DeepEqual(p.CI[0], wantCI) {
		t.Fatalf("CI Edit → Save stored\n%s\nwant\n%s", mustJSON(t, p.CI), mustJSON(t, wantCI))
	}
	step(t, ctx, "edit the image rule",
		chromedp.Navigate(e.url+"/policies/images"),
		chromedp.WaitVisible(chromedp.CSS("#images-form")),
		chromedp.Click(chromedp.CSS(`tr[data-rule="running"] button[data-edit]`)),
		chromedp.WaitVisible(chromedp.CSS(".cancel-edit")),
		chromedp.Click(chromedp.CSS(`#images-form input[name="onlyFixed"]`)),
		chromedp.Click(chromedp.CSS(`#images-form button[type="submit"]`)),
	)
	waitRevision(t, ctx, 4)
	wantImg := img
	wantImg.Vulnerabilities.OnlyFixed = true
	if p, err = admin.Policy(bg); err != nil || len(p.Images) != 1 || !reflect.DeepEqual(p.Images[0], wantImg) {
		t.Fatalf("image rule Edit → Save stored\n%s (%v)\nwant\n%s", mustJSON(t, p.Images), err, mustJSON(t, wantImg))
	}
	step(t, ctx, "policy history",
		chromedp.Navigate(e.url+"/policies/history"),
		chromedp.WaitVisible(chromedp.CSS("#history")),
	)
	body := text(t, ctx, "#history tbody")
	for _, s := range []string{"update images rule", "update ci rule", "add ci rule", userOf(auth.RoleAdmin)} {
		if !strings.Contains(body, s) {
			t.Errorf("the history page lacks %q:\n%s", s, body)
		}
	}
	step(t, ctx, "a revision",
		chromedp.Click(chromedp.CSS(`#history a[href="/policies/history/3"]`)),
		chromedp.WaitVisible(chromedp.CSS("#revision-json")),
	)
	var at policy.Policy
	if err := json.Unmarshal([]byte(text(t, ctx, "#revision-json")), &at); err != nil || at.Revision != 3 || len(at.CI) != 1 || at.CI[0].Vulnerabilities.BlockThreshold != "HIGH" || len(at.Images) != 1 || at.Images[0].Vulnerabilities.OnlyFixed {
		t.Errorf("revision 3 shows %+v (%v)", at, err)
	}
}
