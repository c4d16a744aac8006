package server

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
)

// The Users page: an admin adds, disables, re-enables, sets the password of
// and deletes a user; the Tokens page revokes a token and rotates an agent
// credential; signing out revokes the session.
func TestBrowserUsersAndTokens(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	bg := context.Background()
	ctx := browser(t)
	signIn(t, ctx, e, auth.RoleAdmin, "/users", "#user-form")
	step(t, ctx, "add a user",
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name="username"]`), "carol"),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name="password"]`), "carol-password-1"),
		chromedp.SetValue(chromedp.CSS(`#user-form select[name="role"]`), "agent"),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name="families"]`), "shop-web, shop-worker"),
		chromedp.Click(chromedp.CSS(`#user-form button[type="submit"]`)),
	)
	waitPage(t, ctx, `document.querySelector('tr[data-user="carol"]') !== null`)
	u, err := e.apiClient(auth.RoleAdmin).User(bg, "carol")
	if err != nil || u.Role != "agent" || strings.Join(u.TaskFamilies, ",") != "shop-web,shop-worker" {
		t.Fatalf("the form made %+v, %v", u, err)
	}
	step(t, ctx, "disable carol", chromedp.Click(chromedp.CSS(`tr[data-user="carol"] button[data-user-action="disable"]`)))
	waitPage(t, ctx, `document.querySelector('tr[data-user="carol"] button[data-user-action="enable"]') !== null`)
	if r := e.do("GET", api.PathAgentPolicy+"?family=shop-web", "basic carol carol-password-1", ""); r.status != 401 {
		t.Errorf("carol disabled: %d", r.status)
	}
	step(t, ctx, "enable carol and set a password",
		chromedp.Click(chromedp.CSS(`tr[data-user="carol"] button[data-user-action="enable"]`)))
	waitPage(t, ctx, `document.querySelector('tr[data-user="carol"] button[data-user-action="disable"]') !== null`)
	step(t, ctx, "set carol's password",
		chromedp.Evaluate[chromedp.Void](`window.prompt = () => "carol-password-2"; document.body.dataset.ready = "before-reload"`),
		chromedp.Click(chromedp.CSS(`tr[data-user="carol"] button[data-user-action="password"]`)),
	)
	waitPage(t, ctx, `true`) // the reloaded page: the old one's marker was cleared
	if r := e.do("GET", api.PathAgentPolicy+"?family=shop-web", "basic carol carol-password-2", ""); r.status != 200 {
		t.Errorf("carol's new password: %d %s", r.status, r.body)
	}
	step(t, ctx, "delete carol",
		confirmAll,
		chromedp.Click(chromedp.CSS(`tr[data-user="carol"] button[data-user-action="delete"]`)),
	)
	waitPage(t, ctx, `document.querySelector('tr[data-user="carol"]') === null && document.querySelector('#users') !== null`)
	if _, err := e.apiClient(auth.RoleAdmin).User(bg, "carol"); statusOf(err) != 404 {
		t.Errorf("carol after Delete: %v", err)
	}

	// Tokens: another session of the admin is listed and revoked from the page.
	other := e.login(userOf(auth.RoleAdmin), passwords[auth.RoleAdmin]).Token
	step(t, ctx, "tokens page", chromedp.Navigate(e.url+"/tokens"), chromedp.WaitVisible(chromedp.CSS("#tokens")))
	waitPage(t, ctx, `document.querySelectorAll("#tokens tbody tr").length === 2`)
	step(t, ctx, "revoke the other session",
		confirmAll,
		chromedp.Click(chromedp.CSS(`#tokens tr:not(:has(.badge:not(.result-passed))) button[data-revoke]`)),
	)
	waitPage(t, ctx, `document.querySelectorAll("#tokens button[data-revoke]").length === 1`)
	if r := e.do("GET", api.PathPolicies, "bearer "+other, ""); r.status != 401 {
		t.Errorf("the session revoked on the page: %d", r.status)
	}
	step(t, ctx, "rotate an agent credential",
		chromedp.SendKeys(chromedp.CSS(`#rotate-form input[name="taskFamily"]`), "shop-web"),
		chromedp.Click(chromedp.CSS(`#rotate-form button[type="submit"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("rotated-token").value.startsWith("tga_")`),
	)
	tok, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#rotated-token")))
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", api.PathAgentPolicy, "bearer "+tok, ""); r.status != 200 {
		t.Errorf("the credential rotated on the page: %d", r.status)
	}
	// A user changes their own password: every session ends, the new password signs in.
	step(t, ctx, "change my password",
		chromedp.SendKeys(chromedp.CSS(`#password-form input[name="current"]`), passwords[auth.RoleAdmin]),
		chromedp.SendKeys(chromedp.CSS(`#password-form input[name="password"]`), "admin-password-2"),
		chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#signin")),
	)
	if r := e.do("GET", api.PathPolicies, basic(auth.RoleAdmin), ""); r.status != 401 {
		t.Errorf("the old password after the change: %d", r.status)
	}
	step(t, ctx, "sign in with the new password",
		chromedp.SendKeys(chromedp.CSS("#username"), userOf(auth.RoleAdmin)),
		chromedp.SetValue(chromedp.CSS("#password"), "admin-password-2"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS(".tiles")),
	)
	// Sign out: the session is revoked on the console.
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil || cookies != "" {
		t.Errorf("the session cookie is readable from script: %q, %v", cookies, err)
	}
	step(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`.who button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#signin")),
		chromedp.Navigate(e.url+"/tokens"),
		chromedp.WaitVisible(chromedp.CSS("#signin")),
	)
}
