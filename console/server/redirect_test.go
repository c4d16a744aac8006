package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/auth"
)

// After signing in, the login form redirects only to a path of this console.
func TestLoginRedirectStaysOnConsole(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tests := []struct{ next, want string }{
		{"/audits/runtime?q=x", "/audits/runtime?q=x"},
		{"/policies/waf", "/policies/waf"},
		{"/scans/abc%2Fdef", "/scans/abc%2Fdef"},
		{"", "/"},
		{"//evil.example/x", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\n/evil.example", "/"},
		{"/ /evil.example", "/"},
		{"/\\evil.example", "/"},
		{"/\\/evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/\u3000/evil.example", "/"},
		{"/\u2028/evil.example", "/"},
		{"http:/evil.example", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			if got := safeNext(tt.next); got != tt.want {
				t.Errorf("safeNext(%q) = %q, want %q", tt.next, got, tt.want)
			}
			form := url.Values{"username": {userOf(auth.RoleAuditor)}, "password": {passwords[auth.RoleAuditor]}, "next": {tt.next}}
			resp, err := noRedirect.Post(e.url+"/login", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.want {
				t.Errorf("POST /login next=%q: %d Location %q, want 303 %q", tt.next, resp.StatusCode, resp.Header.Get("Location"), tt.want)
			}
			// The login page's hidden field carries the safe value only. The raw
			// query as an attacker would send it: next=/%09/evil.example.
			page := e.do("GET", "/login?next="+url.QueryEscape(tt.next), "", "")
			if tt.want == "/" && tt.next != "" && strings.Contains(page.body, "evil.example") {
				t.Errorf("the login page keeps %q in its form", tt.next)
			}
		})
	}
	// The raw attack from the review.
	resp, err := noRedirect.Post(e.url+"/login?x=1", "application/x-www-form-urlencoded",
		strings.NewReader("username="+userOf(auth.RoleAuditor)+"&password="+passwords[auth.RoleAuditor]+"&next=/%09/evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("next=/%%09/evil.example redirects to %q, want /", loc)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != hstsValue {
		t.Errorf("HTTPS answer has Strict-Transport-Security %q, want %q", got, hstsValue)
	}
}

// FuzzSafeNext: whatever the form sends, the redirect target is a path of
// this console as a browser would resolve it: it starts with one "/", holds
// no byte a browser drops or rewrites, and parses with no scheme or host.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil", "/\t/evil", "/\\evil", "https://x", "/%2F/x", "/..//x", "/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got == "/" {
			return
		}
		if got != next {
			t.Fatalf("safeNext(%q) = %q: kept values must be unchanged", next, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("safeNext(%q) = %q leaves the console", next, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x21 || got[i] > 0x7e {
				t.Fatalf("safeNext(%q) keeps byte %#x", next, got[i])
			}
		}
		// As the browser resolves it against the console's own URL.
		base, _ := url.Parse("https://console.example:8083/login")
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("safeNext(%q) = %q does not parse: %v", next, got, err)
		}
		if r := base.ResolveReference(u); r.Host != base.Host || r.Scheme != base.Scheme {
			t.Fatalf("safeNext(%q) = %q resolves to %s", next, got, r)
		}
	})
}
