package waf

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/policy"
)

// benchRequests is a benign mix with browser-like headers; %d makes values
// differ per request as in real traffic (so memoized results only help with
// what real traffic repeats: header values).
var benchRequests = []struct{ name, method, target, contentType, body string }{
	{"get", "GET", "/api/items?page=%d&sort=name&order=asc", "", ""},
	{"form", "POST", "/login", "application/x-www-form-urlencoded", "user=alice%%40example.com&password=correct+horse+battery+%d&remember=on"},
	{"json", "POST", "/api/orders", "application/json", `{"items":[{"sku":"SH-42-BLU","qty":%d}],"shipping":{"city":"Lyon","zip":"69001"},"note":"leave at the door"}`},
}

func benchRequest(method, target, contentType, body string, n int) (*http.Request, []byte) {
	if strings.Contains(target, "%d") {
		target = fmt.Sprintf(target, n)
	}
	if strings.Contains(body, "%d") {
		body = fmt.Sprintf(body, n)
	}
	r, _ := http.NewRequest(method, "http://shop.example.com"+target, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-US,en;q=0.5")
	r.Header.Set("Accept-Encoding", "gzip, deflate")
	r.Header.Set("Cookie", fmt.Sprintf("session=%032x; theme=dark", n*0x9e3779b9))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("Content-Length", fmt.Sprint(len(body)))
	}
	return r, []byte(body)
}

// BenchmarkInspect compares the proxy's inspection (all protections, PL1)
// with plain Coraza+CRS (every rule file, PL1) on the same benign requests.
func BenchmarkInspect(b *testing.B) {
	e, err := newEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, benchLimit)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := newPlainCRS(1)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range benchRequests {
		b.Run("taskguard/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				r, body := benchRequest(tc.method, tc.target, tc.contentType, tc.body, n)
				if v := e.inspect(r, body, false); v.effect != policy.EffectDisable {
					b.Fatalf("benign request flagged: %v", v.ruleIDs())
				}
			}
		})
		b.Run("plain/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				r, body := benchRequest(tc.method, tc.target, tc.contentType, tc.body, n)
				if plainBlocks(plain, r, body) {
					b.Fatal("benign request blocked")
				}
			}
		})
	}
}

// BenchmarkInspectProtection shows where the time goes: the inspection cost
// of each protection alone (attack-tools is close to the fixed cost of a
// transaction) against all of them, on the benign mix.
func BenchmarkInspectProtection(b *testing.B) {
	for _, name := range append([]policy.Protection{"all"}, policy.Protections...) {
		b.Run(string(name), func(b *testing.B) {
			prot := map[policy.Protection]policy.Effect{name: policy.EffectPrevent}
			if name == "all" {
				prot = allProtections(policy.EffectPrevent)
			}
			e, err := newEngine(rule(8081, prot), 1, DefaultInspectionLimit)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				tc := benchRequests[n%len(benchRequests)]
				r, body := benchRequest(tc.method, tc.target, tc.contentType, tc.body, n)
				if v := e.inspect(r, body, false); v.effect != policy.EffectDisable {
					b.Fatalf("benign request flagged: %v", v.ruleIDs())
				}
			}
		})
	}
}

// BenchmarkInspectAttack shows what the gate costs when it cannot skip:
// attacks through the engine with and without the gate (all protections,
// PL1). Coraza then evaluates the families whose rules may match, and the
// gate lets it skip the others.
func BenchmarkInspectAttack(b *testing.B) {
	attacks := []struct{ name, method, target, contentType, body string }{
		{"sqli-json", "POST", "/", "application/json", seedBody},
		{"xss-query", "GET", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", ""},
	}
	for _, gated := range []bool{true, false} {
		e, err := compileEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, DefaultInspectionLimit, gated)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range attacks {
			b.Run(fmt.Sprintf("%s/gate=%v", a.name, gated), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					r, body := benchRequest(a.method, a.target, a.contentType, a.body, 0)
					if v := e.inspect(r, body, false); v.effect != policy.EffectPrevent {
						b.Fatalf("attack not blocked: %v", v.ruleIDs())
					}
				}
			})
		}
	}
}

// BenchmarkChecks measures the rule's own protections (sources, rate
// limit, OpenAPI, bots) on the benign mix, without CRS.
func BenchmarkChecks(b *testing.B) {
	spec, err := os.ReadFile("testdata/bench-openapi.yaml")
	if err != nil {
		b.Fatal(err)
	}
	r := rule(8081, allProtections(policy.EffectPrevent))
	r.API = &policy.WAFAPI{Effect: policy.EffectPrevent, Spec: string(spec)}
	r.RateLimit = &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: 1_000_000, PeriodSeconds: 1}
	r.Sources = &policy.WAFSources{Effect: policy.EffectPrevent, Allowed: []string{"127.0.0.0/8"}}
	r.Bots = policy.EffectAlert
	c, err := newChecks(r, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range benchRequests {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				rq, body := benchRequest(tc.method, tc.target, tc.contentType, tc.body, n)
				client, ok := c.clients.addr(rq)
				if f := c.beforeBody(rq, client, ok); len(f) > 0 {
					b.Fatalf("%+v", f)
				}
				if f := c.afterBody(rq.Context(), rq, body, false); len(f) > 0 {
					b.Fatalf("%+v", f)
				}
			}
		})
	}
}

var benchLimit = DefaultInspectionLimit

// BenchmarkInspectDetection compares the extended detection (the default)
// with CRS PL1 alone on the same benign requests.
func BenchmarkInspectDetection(b *testing.B) {
	for _, d := range []policy.WAFDetection{policy.WAFDetectionCRS, policy.WAFDetectionExtended} {
		r := rule(8081, allProtections(policy.EffectPrevent))
		r.Detection = d
		e, err := newEngine(r, 1, benchLimit)
		if err != nil {
			b.Fatal(err)
		}
		for _, tc := range benchRequests {
			b.Run(string(d)+"/"+tc.name, func(b *testing.B) {
				n := 0
				for b.Loop() {
					n++
					r, body := benchRequest(tc.method, tc.target, tc.contentType, tc.body, n)
					if v := e.inspect(r, body, false); v.effect != policy.EffectDisable {
						b.Fatalf("benign request flagged: %v", v.ruleIDs())
					}
				}
			})
		}
	}
}
