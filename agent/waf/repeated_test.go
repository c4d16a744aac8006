package waf

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// TestNoBypassByRepeatedNames: an attack in a form parameter whose name
// repeats another's in another case ("Q" and "q"), or repeats it exactly,
// or is empty, is blocked every time through the real proxy. Coraza
// v3.8.1's own URL-encoded processor let "Q=<script>…&q=hello" through 176
// times in 200 (Map.Set of "q" replaced the values of "Q" in map order),
// and the empty name 3 in 200 (its transformation cache gave one value
// another's transformation); internal/bodyproc adds every pair under its
// own key string.
func TestNoBypassByRepeatedNames(t *testing.T) {
	a := newApp(t)
	_, base, _ := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)))
	xss := url.QueryEscape("<script>alert(1)</script>")
	bodies := []string{
		"Q=" + xss + "&q=hello",
		"q=hello&Q=" + xss,
		"=hello&=" + xss + "&a=1",
		"q=hello&q=" + xss + "&a=1&b=2&c=3",
	}
	for _, body := range bodies {
		for i := range 60 {
			resp, _ := post(t, base+"/login", "application/x-www-form-urlencoded", strings.NewReader(body))
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%q, try %d: status %d, want 403", body, i, resp.StatusCode)
			}
		}
	}
	if n := len(a.requests()); n != 0 {
		t.Fatalf("the app received %d attack requests", n)
	}
	// The benign twin: the same names, no attack, passes.
	resp, _ := post(t, base+"/login", "application/x-www-form-urlencoded", strings.NewReader("Q=hello&q=world&=x"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("benign repeated names: status %d, want 200", resp.StatusCode)
	}
}
