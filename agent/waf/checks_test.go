package waf

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

const shopSpec = `openapi: 3.0.3
info: {title: shop, version: "1"}
servers: [{url: "https://shop.example.com/api"}]
paths:
  /orders:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [sku, qty]
              additionalProperties: false
              properties:
                sku: {type: string, pattern: "^SKU-[0-9]{6}$"}
                qty: {type: integer, minimum: 1, maximum: 100}
                note: {type: string, maxLength: 200}
      responses: {"200": {description: ok}}
  /orders/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    get:
      parameters: [{name: fields, in: query, schema: {type: string, enum: [summary, full]}}]
      responses: {"200": {description: ok}}
`

type call struct {
	method, path, body string
	header             map[string]string
}

// send makes one request and returns its status and headers.
func send(t *testing.T, base string, c call) (int, http.Header) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// newAudits returns the audits added since the first n.
func newAudits(t *testing.T, rec *audits, n int) []api.Audit {
	t.Helper()
	return rec.all()[n:]
}

// TestAPIProtection: each kind of violation of the OpenAPI document is
// refused (prevent) with its own audit, and its benign twin passes.
func TestAPIProtection(t *testing.T) {
	a := newApp(t)
	r := rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})
	r.API = &policy.WAFAPI{Effect: policy.EffectPrevent, Spec: shopSpec}
	_, base, rec := startProxy(t, r)
	tests := []struct {
		name   string
		attack call
		audit  string
		benign call
	}{
		{"unknown path", call{method: "GET", path: "/api/admin/users"}, "path /api/admin/users is not described in the API",
			call{method: "GET", path: "/api/orders/42"}},
		{"unknown method", call{method: "DELETE", path: "/api/orders/42"}, "method DELETE is not described for /api/orders/42",
			call{method: "GET", path: "/api/orders/42?fields=full"}},
		{"path parameter", call{method: "GET", path: "/api/orders/42abc"}, `parameter "id" in path`,
			call{method: "GET", path: "/api/orders/7"}},
		{"query parameter", call{method: "GET", path: "/api/orders/42?fields=everything"}, `parameter "fields" in query`,
			call{method: "GET", path: "/api/orders/42?fields=summary"}},
		{"body type", call{method: "POST", path: "/api/orders", body: `{"sku":"SKU-000001","qty":"many"}`}, "request body at /qty",
			call{method: "POST", path: "/api/orders", body: `{"sku":"SKU-000001","qty":2,"note":"it's for my mum's garden"}`}},
		{"body extra property", call{method: "POST", path: "/api/orders", body: `{"sku":"SKU-000001","qty":1,"admin":true}`}, "request body",
			call{method: "POST", path: "/api/orders", body: `{"sku":"SKU-123456","qty":100}`}},
		{"body missing", call{method: "POST", path: "/api/orders"}, "request body",
			call{method: "POST", path: "/api/orders", body: `{"sku":"SKU-000002","qty":1}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, reached := len(rec.all()), len(a.requests())
			if st, _ := send(t, base, tc.attack); st != http.StatusForbidden {
				t.Errorf("violation: status %d, want 403", st)
			}
			got := newAudits(t, rec, n)
			if len(got) != 1 || got[0].Effect != policy.EffectPrevent || got[0].WAF.Protections[0] != "api" ||
				!strings.HasPrefix(got[0].Message, "API violation blocked "+tc.attack.method) || !strings.Contains(got[0].Message, tc.audit) {
				t.Errorf("violation: audits %+v, want one api audit saying %q", got, tc.audit)
			}
			if st, _ := send(t, base, tc.benign); st != http.StatusOK {
				t.Errorf("benign twin: status %d, want 200", st)
			}
			if got := newAudits(t, rec, n+1); len(got) != 0 {
				t.Errorf("benign twin raised audits %+v", got)
			}
			if got := len(a.requests()) - reached; got != 1 {
				t.Errorf("app received %d requests, want only the benign one", got)
			}
		})
	}

	// alert: forwarded, audited.
	r.API.Effect = policy.EffectAlert
	_, base, rec = startProxy(t, r)
	if st, _ := send(t, base, call{method: "GET", path: "/api/admin"}); st != http.StatusOK {
		t.Errorf("alert: status %d, want 200", st)
	}
	if got := rec.all(); len(got) != 1 || got[0].Effect != policy.EffectAlert || !strings.HasPrefix(got[0].Message, "API violation detected GET /api/admin") {
		t.Errorf("alert: audits %+v", got)
	}
}

func TestAPISpecRejected(t *testing.T) {
	for _, spec := range []string{"not: [yaml", `{"swagger":"2.0","info":{"title":"x","version":"1"},"paths":{}}`, `openapi: 3.0.3
info: {title: x, version: "1"}
paths:
  /a:
    get:
      parameters: [{name: id, in: nowhere}]
      responses: {"200": {description: ok}}
`} {
		r := rule(8081, map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})
		r.API = &policy.WAFAPI{Effect: policy.EffectPrevent, Spec: spec}
		if _, err := New(r); err == nil || !strings.Contains(err.Error(), "api.spec") {
			t.Errorf("spec %.30q: New error %v, want an api spec error", spec, err)
		}
	}
}

// TestRateLimit: a client over its limit gets 429 with Retry-After and an
// audit; another client is not limited; the client address comes from
// X-Forwarded-For only when the peer is a trusted proxy.
func TestRateLimit(t *testing.T) {
	a := newApp(t)
	r := rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})
	r.RateLimit = &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: 3, PeriodSeconds: 3600}
	r.ClientIPHeader, r.TrustedProxies = "X-Forwarded-For", []string{"127.0.0.1"}
	_, base, rec := startProxy(t, r)
	from := func(ip string) call {
		return call{method: "GET", path: "/", header: map[string]string{"X-Forwarded-For": "192.0.2.99, " + ip}}
	}
	for i := range 3 {
		if st, _ := send(t, base, from("203.0.113.5")); st != http.StatusOK {
			t.Fatalf("request %d under the limit: status %d", i+1, st)
		}
	}
	st, h := send(t, base, from("203.0.113.5"))
	if st != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("request over the limit: status %d Retry-After %q, want 429 with Retry-After", st, h.Get("Retry-After"))
	}
	got := rec.all()
	if len(got) != 1 || got[0].WAF.Protections[0] != "rate-limit" || got[0].WAF.Source != "203.0.113.5" ||
		got[0].Message != "rate limit blocked GET / from 203.0.113.5: more than 3 requests in 3600 s (event "+got[0].ID+")" {
		t.Fatalf("audits %+v", got)
	}
	// The benign twin: another client behind the same load balancer.
	if st, _ := send(t, base, from("198.51.100.8")); st != http.StatusOK {
		t.Fatalf("another client: status %d, want 200", st)
	}

	// From an untrusted peer, X-Forwarded-For is not believed: rotating it
	// does not escape the limit.
	r.TrustedProxies = []string{"10.0.0.0/8"}
	_, base, _ = startProxy(t, r)
	statuses := []int{}
	for i := range 4 {
		st, _ := send(t, base, from("198.51.100."+string(rune('1'+i))))
		statuses = append(statuses, st)
	}
	if statuses[3] != http.StatusTooManyRequests {
		t.Fatalf("spoofed X-Forwarded-For from an untrusted peer: statuses %v, want the 4th limited", statuses)
	}
}

func TestRateLimiterBoundedAndRefills(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newRateLimiter(policy.WAFRateLimit{Requests: 2, PeriodSeconds: 10}, func() time.Time { return now })
	c := netip.MustParseAddr("192.0.2.1")
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow(c); ok != want {
			t.Fatalf("request %d: allowed %v, want %v", i, ok, want)
		}
	}
	_, wait := l.allow(c)
	if wait <= 0 || wait > 5*time.Second {
		t.Fatalf("wait %v, want up to one token's 5 s", wait)
	}
	now = now.Add(5 * time.Second)
	if ok, _ := l.allow(c); !ok {
		t.Fatal("no token after 5 s (one token refills every 5 s)")
	}
	// Many clients: memory stays bounded by two generations.
	for i := range 3 * maxRateClients {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := l.clients(); n > 2*maxRateClients {
		t.Fatalf("limiter remembers %d clients, bound %d", n, 2*maxRateClients)
	}
}

// TestSourceLists: denied and allowed CIDRs, each with its benign twin.
func TestSourceLists(t *testing.T) {
	a := newApp(t)
	from := func(ip string) call {
		return call{method: "GET", path: "/", header: map[string]string{"X-Forwarded-For": ip}}
	}
	tests := []struct {
		name            string
		sources         policy.WAFSources
		refused, benign string
		audit           string
	}{
		{"denied", policy.WAFSources{Effect: policy.EffectPrevent, Denied: []string{"203.0.113.0/24"}}, "203.0.113.9", "198.51.100.7",
			"source address blocked GET / from 203.0.113.9: address in the denied list (203.0.113.0/24)"},
		{"allowed", policy.WAFSources{Effect: policy.EffectPrevent, Allowed: []string{"198.51.100.0/24", "2001:db8::/32"}}, "192.0.2.1", "2001:db8::5",
			"source address blocked GET / from 192.0.2.1: address not in the allowed list"},
		{"denied alert", policy.WAFSources{Effect: policy.EffectAlert, Denied: []string{"203.0.113.9"}}, "203.0.113.9", "203.0.113.10",
			"source address detected GET / from 203.0.113.9: address in the denied list (203.0.113.9/32)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})
			r.Sources, r.ClientIPHeader, r.TrustedProxies = &tc.sources, "X-Forwarded-For", []string{"127.0.0.0/8"}
			_, base, rec := startProxy(t, r)
			want := http.StatusForbidden
			if tc.sources.Effect == policy.EffectAlert {
				want = http.StatusOK
			}
			if st, _ := send(t, base, from(tc.refused)); st != want {
				t.Errorf("%s: status %d, want %d", tc.refused, st, want)
			}
			got := rec.all()
			if len(got) != 1 || got[0].WAF.Protections[0] != "sources" || got[0].Message != tc.audit+" (event "+got[0].ID+")" {
				t.Errorf("audits %+v, want %q", got, tc.audit)
			}
			if st, _ := send(t, base, from(tc.benign)); st != http.StatusOK {
				t.Errorf("benign %s: status %d", tc.benign, st)
			}
			if got := rec.all(); len(got) != 1 {
				t.Errorf("benign twin raised audits %+v", got[1:])
			}
		})
	}
}

// TestBotSignals: alert-only; each signal is audited and forwarded, a
// browser's request is not. Each case comes from its own client: a
// client's next bot findings are counted into a summary (aggregate_test.go).
func TestBotSignals(t *testing.T) {
	a := newApp(t)
	r := rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})
	r.Bots = policy.EffectAlert
	r.ClientIPHeader, r.TrustedProxies = "X-Forwarded-For", []string{"127.0.0.1"}
	_, base, rec := startProxy(t, r)
	browser := map[string]string{
		"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Accept":          "text/html,application/xhtml+xml",
		"Accept-Language": "fr-FR,fr;q=0.9",
		"Accept-Encoding": "gzip, deflate, br",
	}
	without := func(h string) map[string]string {
		m := map[string]string{}
		for k, v := range browser {
			if k != h {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name   string
		header map[string]string
		audit  string
	}{
		{"scanner", map[string]string{"User-Agent": "Fuzz Faster U Fool v2.1.0 (ffuf)"}, "scanner user agent (ffuf)"},
		{"internet scanner", map[string]string{"User-Agent": "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)"}, "scanner user agent (censysinspect)"},
		{"headless", map[string]string{"User-Agent": "Mozilla/5.0 HeadlessChrome/131.0.0.0", "Accept": "*/*", "Accept-Language": "en", "Accept-Encoding": "gzip"}, "headless browser user agent (headlesschrome)"},
		{"no user agent", map[string]string{"User-Agent": ""}, "request without a User-Agent"},
		{"browser without Accept-Language", without("Accept-Language"), "browser user agent without Accept-Language"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(rec.all())
			client := fmt.Sprintf("192.0.2.%d", i+1)
			tc.header["X-Forwarded-For"] = client
			if st, _ := send(t, base, call{method: "GET", path: "/", header: tc.header}); st != http.StatusOK {
				t.Errorf("status %d, want 200 (alert-only)", st)
			}
			got := newAudits(t, rec, n)
			if len(got) != 1 || got[0].Effect != policy.EffectAlert || got[0].WAF.Protections[0] != "bots" ||
				got[0].Message != "bot detected GET / from "+client+": "+tc.audit+" (event "+got[0].ID+")" {
				t.Errorf("audits %+v, want one saying %q", got, tc.audit)
			}
		})
	}
	n := len(rec.all())
	for _, h := range []map[string]string{browser, {"User-Agent": "curl/8.5.0"}, {"User-Agent": "okhttp/4.12.0"}} {
		if st, _ := send(t, base, call{method: "GET", path: "/", header: h}); st != http.StatusOK {
			t.Errorf("benign %v: status %d", h["User-Agent"], st)
		}
	}
	if got := newAudits(t, rec, n); len(got) != 0 {
		t.Errorf("benign twins raised audits %+v", got)
	}
	// prevent is refused by validation: bots is alert-only.
	r.Bots = policy.EffectPrevent
	if _, err := New(r); err == nil {
		t.Error("bots prevent accepted")
	}
}
