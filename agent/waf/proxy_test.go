package waf

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// seedBody is the seeds' SQL injection test body: it claims JSON but does not parse.
const seedBody = `{"-1+union+all+select+1,group_concat(user,0x3a,file_priv),3,4+from+mysql.user--"}`

// app is a loopback backend that records what reaches it.
type app struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []appRequest
}

type appRequest struct {
	method, path, host string
	header             http.Header
	bodySum            [32]byte
	bodyLen            int
}

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			echoUpgrade(w, r)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		a.mu.Lock()
		a.reqs = append(a.reqs, appRequest{method: r.Method, path: r.URL.Path, host: r.Host, header: r.Header.Clone(), bodySum: sha256.Sum256(b), bodyLen: len(b)})
		a.mu.Unlock()
		fmt.Fprintf(w, "app saw %s %s proto %s", r.Method, r.URL.Path, r.Proto)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) port(t *testing.T) uint16 {
	t.Helper()
	u, err := url.Parse(a.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return uint16(p)
}

func (a *app) requests() []appRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reqs)
}

// echoUpgrade answers a WebSocket-style upgrade with 101 and echoes raw bytes.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	buf := make([]byte, 1024)
	for {
		n, err := brw.Read(buf)
		if err != nil {
			return
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			return
		}
	}
}

// audits collects what the proxy reports.
type audits struct {
	mu   sync.Mutex
	list []api.Audit
}

func (s *audits) sink(_ context.Context, a api.Audit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, a)
}

func (s *audits) all() []api.Audit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list)
}

func allProtections(e policy.Effect) map[policy.Protection]policy.Effect {
	m := map[policy.Protection]policy.Effect{}
	for _, p := range policy.Protections {
		m[p] = e
	}
	return m
}

// startProxy serves a proxy for rule on a loopback listener and returns its base URL.
func startProxy(t *testing.T, rule policy.WAFRule, opts ...Option) (*Proxy, string, *audits) {
	t.Helper()
	rec := &audits{}
	p, err := New(rule, append([]Option{WithAuditSink(rec.sink)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p, "http://" + ln.Addr().String(), rec
}

func rule(appPort uint16, prot map[policy.Protection]policy.Effect, ex ...policy.WAFException) policy.WAFRule {
	return policy.WAFRule{Name: "web", ExternalPort: 8080, AppPort: appPort, Protections: prot, Exceptions: ex}
}

var eventIDRe = regexp.MustCompile(`Event ID: <code>([0-9a-f]{32})</code>`)

// TestSeedSQLiBlocked sends the seeds' exact request: invalid JSON carrying a
// UNION-based SQL injection. It must be blocked as SQL injection with a block
// page whose event ID the audit carries.
func TestSeedSQLiBlocked(t *testing.T) {
	a := newApp(t)
	_, base, rec := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)))

	req, err := http.NewRequest(http.MethodPost, base+"/", strings.NewReader(seedBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "curl/8.5.0")
	req.Header.Set("Accept", "*/*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403; body %s", resp.StatusCode, page)
	}
	if !strings.Contains(string(page), "blocked by taskguard") {
		t.Errorf("block page does not say it was blocked by taskguard:\n%s", page)
	}
	m := eventIDRe.FindSubmatch(page)
	if m == nil {
		t.Fatalf("block page has no event ID:\n%s", page)
	}
	if got := resp.Header.Get(EventIDHeader); got != string(m[1]) {
		t.Errorf("%s header %q, page says %q", EventIDHeader, got, m[1])
	}
	if n := len(a.requests()); n != 0 {
		t.Errorf("app received %d requests, want 0", n)
	}
	list := rec.all()
	if len(list) != 1 {
		t.Fatalf("got %d audits, want 1", len(list))
	}
	au := list[0]
	if au.Kind != api.AuditWAF || au.Effect != policy.EffectPrevent || au.WAF == nil {
		t.Fatalf("audit kind %q effect %q detail %v", au.Kind, au.Effect, au.WAF)
	}
	if au.WAF.EventID != string(m[1]) {
		t.Errorf("audit event ID %q, block page %q", au.WAF.EventID, m[1])
	}
	if !slices.Contains(au.WAF.Protections, string(policy.ProtectionSQLi)) {
		t.Errorf("protections %v, want sqli among them", au.WAF.Protections)
	}
	if !slices.ContainsFunc(au.WAF.RuleIDs, func(id int) bool { return id >= 942000 && id < 943000 }) {
		t.Errorf("rule IDs %v carry no 942xxx SQLi rule", au.WAF.RuleIDs)
	}
	if !slices.Contains(au.WAF.RuleIDs, 200002) {
		t.Errorf("rule IDs %v: the body parse failure (200002) is not reported", au.WAF.RuleIDs)
	}
	if au.WAF.Method != http.MethodPost || au.WAF.Path != "/" || au.WAF.Source != "127.0.0.1" {
		t.Errorf("detail %+v", au.WAF)
	}
	if !strings.Contains(au.Message, "SQL injection") {
		t.Errorf("message %q does not name SQL injection", au.Message)
	}
	if !strings.Contains(au.WAF.Payload, "union") || len(au.WAF.Payload) > MaxPayload+len("…") {
		t.Errorf("payload excerpt %q", au.WAF.Payload)
	}
}

// TestSeedSQLiWithoutProtocol shows the raw-body re-inspection does not rely on
// the protocol family: with only sqli on, the invalid JSON is still SQLi.
func TestSeedSQLiWithoutProtocol(t *testing.T) {
	a := newApp(t)
	_, base, rec := startProxy(t, rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent}))
	resp, err := http.Post(base+"/", "application/json", strings.NewReader(seedBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	if l := rec.all(); len(l) != 1 || !slices.Equal(l[0].WAF.Protections, []string{"sqli"}) {
		t.Fatalf("audits %+v, want one with protections [sqli]", l)
	}
}

func TestEffects(t *testing.T) {
	attack := "/search?q=" + url.QueryEscape("1' UNION SELECT username, password FROM users--")
	tests := []struct {
		name       string
		effect     policy.Effect
		target     string
		wantStatus int
		wantAudit  policy.Effect // "" for none
		wantAtApp  bool
		wantStats  Stats
	}{
		{"benign passes under prevent", policy.EffectPrevent, "/search?q=blue+shoes", 200, "", true, Stats{Inspected: 1, Passed: 1, FastPath: 1}},
		{"attack blocked under prevent", policy.EffectPrevent, attack, 403, policy.EffectPrevent, false, Stats{Inspected: 1, Prevented: 1}},
		{"attack forwarded and audited under alert", policy.EffectAlert, attack, 200, policy.EffectAlert, true, Stats{Inspected: 1, Alerted: 1}},
		{"attack ignored when disabled", policy.EffectDisable, attack, 200, "", true, Stats{Inspected: 1, Passed: 1, FastPath: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			p, base, rec := startProxy(t, rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: tc.effect}))
			resp, err := http.Get(base + tc.target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := len(a.requests()) == 1; got != tc.wantAtApp {
				t.Errorf("reached app %v, want %v", got, tc.wantAtApp)
			}
			l := rec.all()
			switch {
			case tc.wantAudit == "" && len(l) != 0:
				t.Errorf("unexpected audits %+v", l)
			case tc.wantAudit != "" && (len(l) != 1 || l[0].Effect != tc.wantAudit):
				t.Errorf("audits %+v, want one with effect %s", l, tc.wantAudit)
			}
			if got := p.Stats(); got != tc.wantStats {
				t.Errorf("stats %+v, want %+v", got, tc.wantStats)
			}
		})
	}
}

func TestProtectionFamilies(t *testing.T) {
	tests := []struct {
		name       string
		protection policy.Protection
		req        func(base string) *http.Request
	}{
		{"xss", policy.ProtectionXSS, get("/?q=" + url.QueryEscape(`<script>alert(document.cookie)</script>`))},
		{"cmdi", policy.ProtectionCmdi, get("/?cmd=" + url.QueryEscape(";cat /etc/passwd"))},
		{"lfi", policy.ProtectionLFI, get("/?file=" + url.QueryEscape("../../../../etc/passwd"))},
		{"code-injection", policy.ProtectionCodeInjection, get("/?x=" + url.QueryEscape(`<?php system($_GET["c"]); ?>`))},
		{"attack-tools", policy.ProtectionAttackTools, withHeader(get("/"), "User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")},
		{"shellshock", policy.ProtectionShellshock, withHeader(get("/"), "X-Probe", "() { :; }; /bin/cat /etc/passwd")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			// Only this protection is on: the request must be caught by its own family.
			_, base, rec := startProxy(t, rule(a.port(t), map[policy.Protection]policy.Effect{tc.protection: policy.EffectPrevent}))
			resp, err := http.DefaultClient.Do(tc.req(base))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			l := rec.all()
			if len(l) != 1 || !slices.Equal(l[0].WAF.Protections, []string{string(tc.protection)}) {
				t.Fatalf("audits %+v, want protections [%s]", l, tc.protection)
			}
		})
	}
}

func get(target string) func(string) *http.Request {
	return func(base string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, base+target, nil)
		r.Header.Set("User-Agent", "taskguard-test")
		r.Header.Set("Accept", "*/*")
		return r
	}
}

func withHeader(f func(string) *http.Request, k, v string) func(string) *http.Request {
	return func(base string) *http.Request {
		r := f(base)
		r.Header.Set(k, v)
		return r
	}
}

func TestExceptions(t *testing.T) {
	sqli := url.QueryEscape("1' UNION SELECT username, password FROM users--")
	tests := []struct {
		name   string
		ex     policy.WAFException
		target string
		want   int
	}{
		{"path exception passes", policy.WAFException{Path: "/admin/*"}, "/admin/query?q=" + sqli, 200},
		{"path exception elsewhere blocks", policy.WAFException{Path: "/admin/*"}, "/shop?q=" + sqli, 403},
		{"parameter exception passes its parameter", policy.WAFException{Parameter: "sql"}, "/?sql=" + sqli, 200},
		{"parameter exception blocks other parameters", policy.WAFException{Parameter: "sql"}, "/?q=" + sqli, 403},
		{"exception for another protection blocks", policy.WAFException{Path: "/*", Protections: []policy.Protection{policy.ProtectionXSS}}, "/?q=" + sqli, 403},
		{"exception for this protection passes", policy.WAFException{Path: "/*", Protections: []policy.Protection{policy.ProtectionSQLi}}, "/?q=" + sqli, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			_, base, _ := startProxy(t, rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent, policy.ProtectionXSS: policy.EffectPrevent}, tc.ex))
			resp, err := http.Get(base + tc.target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestForwardedAndHopByHopHeaders(t *testing.T) {
	a := newApp(t)
	_, base, _ := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)))
	req, _ := http.NewRequest(http.MethodGet, base+"/hello", nil)
	req.Host = "shop.example.com"
	req.Header.Set("User-Agent", "taskguard-test")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "must not reach the app")
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := a.requests()
	if len(got) != 1 {
		t.Fatalf("app got %d requests", len(got))
	}
	h := got[0].header
	checks := []struct{ name, got, want string }{
		{"Host", got[0].host, "shop.example.com"},
		{"X-Forwarded-For", h.Get("X-Forwarded-For"), "203.0.113.7, 127.0.0.1"},
		{"X-Forwarded-Host", h.Get("X-Forwarded-Host"), "shop.example.com"},
		{"X-Forwarded-Proto", h.Get("X-Forwarded-Proto"), "http"},
		{"X-Hop", h.Get("X-Hop"), ""},
		{"Proxy-Authorization", h.Get("Proxy-Authorization"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestH2C(t *testing.T) {
	a := newApp(t)
	_, base, _ := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)))
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: protocols}}
	defer client.CloseIdleConnections()
	tests := []struct {
		target string
		want   int
	}{
		{"/?q=hello", 200},
		{"/?q=" + url.QueryEscape("1' UNION SELECT password FROM users--"), 403},
	}
	for _, tc := range tests {
		resp, err := client.Get(base + tc.target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("%s: answered over %s, want HTTP/2", tc.target, resp.Proto)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.target, resp.StatusCode, tc.want)
		}
	}
}

func TestWebSocketAfterInspectedHandshake(t *testing.T) {
	a := newApp(t)
	_, base, _ := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)))
	addr := strings.TrimPrefix(base, "http://")
	handshake := func(query string) (net.Conn, *bufio.Reader, *http.Response) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET /ws%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: taskguard-test\r\nAccept: */*\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", query, addr)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return conn, br, resp
	}

	conn, br, resp := handshake("")
	defer conn.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d, want 101", resp.StatusCode)
	}
	msg := []byte("frames pass through untouched")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(br, echo); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(echo, msg) {
		t.Errorf("echo %q, want %q", echo, msg)
	}

	bad, _, resp := handshake("?id=" + url.QueryEscape("1 UNION SELECT password FROM users--"))
	defer bad.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("handshake carrying SQLi: status %d, want 403", resp.StatusCode)
	}
}

func TestStreamingBodyAndInspectionLimit(t *testing.T) {
	a := newApp(t)
	const limit = 4 << 10
	r := rule(a.port(t), allProtections(policy.EffectPrevent))
	r.OversizeEffect = policy.EffectDisable // the rule lets larger bodies through, their prefix inspected
	_, base, _ := startProxy(t, r, WithInspectionLimit(limit))

	big := bytes.Repeat([]byte("a=plain+harmless+text&"), 1<<16) // ~1.4 MiB, far over the limit
	resp, err := http.Post(base+"/upload", "application/x-www-form-urlencoded", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("large benign body: status %d", resp.StatusCode)
	}
	got := a.requests()
	if len(got) != 1 || got[0].bodyLen != len(big) || got[0].bodySum != sha256.Sum256(big) {
		t.Fatalf("app did not receive the body intact: %d requests", len(got))
	}

	// Chunked (no Content-Length): same result.
	resp, err = http.Post(base+"/upload", "application/x-www-form-urlencoded", io.MultiReader(bytes.NewReader(big)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got = a.requests()
	if resp.StatusCode != 200 || len(got) != 2 || got[1].bodyLen != len(big) || got[1].bodySum != sha256.Sum256(big) {
		t.Fatalf("chunked benign body: status %d, app requests %d", resp.StatusCode, len(got))
	}

	attack := []byte("q=" + url.QueryEscape("1' UNION SELECT password FROM users--") + "&" + string(big[:8<<10]))
	resp, err = http.Post(base+"/upload", "application/x-www-form-urlencoded", bytes.NewReader(attack))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("attack inside the inspected prefix: status %d, want 403", resp.StatusCode)
	}
}

func TestSlowClientTimesOut(t *testing.T) {
	a := newApp(t)
	p, base, _ := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)), WithTimeouts(300*time.Millisecond, 300*time.Millisecond, time.Second))
	addr := strings.TrimPrefix(base, "http://")
	tests := []struct {
		name string
		send string
	}{
		{"stalled headers", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"stalled body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly a little"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.send); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			_, err = io.ReadAll(conn) // the proxy must answer or close, not wait for us
			if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 8*time.Second {
				t.Fatalf("proxy kept a stalled connection open for %v (err %v)", time.Since(start), err)
			}
		})
	}
	if n := len(a.requests()); n != 0 {
		t.Errorf("app received %d incomplete requests", n)
	}
	if got := p.Stats(); got.BadRequests != 1 || got.Inspected != 0 {
		t.Errorf("stats %+v, want one bad request and nothing inspected", got)
	}
}

func TestAuditNeverCarriesCredentials(t *testing.T) {
	a := newApp(t)
	_, base, rec := startProxy(t, rule(a.port(t), allProtections(policy.EffectAlert)))
	const secret = "s3cr3t-t0ken-value"
	req, _ := http.NewRequest(http.MethodGet, base+"/?q="+url.QueryEscape("<script>alert(1)</script>")+"&pad="+strings.Repeat("x", 2000), nil)
	req.Header.Set("Authorization", "Bearer "+secret+"' OR 1=1--")
	req.Header.Set("Cookie", "session="+secret+"' UNION SELECT 1--")
	req.Header.Set("User-Agent", "taskguard-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	l := rec.all()
	if len(l) != 1 {
		t.Fatalf("got %d audits, want 1", len(l))
	}
	if s := fmt.Sprintf("%+v %+v", l[0], *l[0].WAF); strings.Contains(s, secret) {
		t.Errorf("audit carries a credential: %s", s)
	}
	if n := len(l[0].WAF.Payload); n == 0 || n > MaxPayload+len("…") {
		t.Errorf("payload length %d, want 1..%d", n, MaxPayload)
	}
}

func TestSetRuleSwapsLive(t *testing.T) {
	a := newApp(t)
	p, base, _ := startProxy(t, rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectAlert}))
	attack := base + "/?q=" + url.QueryEscape("1' UNION SELECT password FROM users--")
	status := func() int {
		resp, err := http.Get(attack)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != 200 {
		t.Fatalf("alert: status %d, want 200", s)
	}
	if err := p.SetRule(rule(a.port(t), map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != 403 {
		t.Fatalf("after swap to prevent: status %d, want 403", s)
	}
	bad := rule(a.port(t), map[policy.Protection]policy.Effect{"sqlinjection": policy.EffectPrevent})
	if err := p.SetRule(bad); err == nil {
		t.Fatal("SetRule accepted an unknown protection")
	}
	if s := status(); s != 403 || p.Rule().Protections[policy.ProtectionSQLi] != policy.EffectPrevent {
		t.Fatalf("a bad rule replaced the good one: status %d", s)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	good := rule(8081, allProtections(policy.EffectPrevent))
	tests := []struct {
		name    string
		rule    policy.WAFRule
		opts    []Option
		wantErr string
	}{
		{"unknown protection", rule(8081, map[policy.Protection]policy.Effect{"sqlinjection": policy.EffectPrevent}), nil, "unknown protection"},
		{"bad effect", rule(8081, map[policy.Protection]policy.Effect{policy.ProtectionSQLi: "block"}), nil, "protections.sqli"},
		{"no app port", rule(0, allProtections(policy.EffectPrevent)), nil, "appPort"},
		{"bad exception glob", rule(8081, allProtections(policy.EffectPrevent), policy.WAFException{Path: "/a/["}), nil, "bad glob"},
		{"paranoia level", good, []Option{WithParanoiaLevel(7)}, "paranoia level 7"},
		{"negative limit", good, []Option{WithInspectionLimit(-1)}, "inspection limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.rule, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestServeEndsUpgradedConnections(t *testing.T) {
	a := newApp(t)
	p, err := New(rule(a.port(t), allProtections(policy.EffectPrevent)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUser-Agent: taskguard-test\r\nAccept: */*\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("upgraded connection still open after Serve returned (read err %v)", err)
	}
}

// TestAppStartingLate: while nothing listens on the app port yet, a request
// waits for the app (bounded) instead of failing with 502; when the app does
// not come up in time the answer is 503 with Retry-After.
func TestAppStartingLate(t *testing.T) {
	// A free loopback port for the app to take later.
	port := testenv.FreePort(t)

	p, base, _ := startProxy(t, rule(port, allProtections(policy.EffectPrevent)), WithAppWait(time.Minute))
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/health")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	// The app starts listening only once the proxy has found its port closed.
	deadline := time.Now().Add(30 * time.Second)
	for p.appRefused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the proxy never tried the app port")
		}
		time.Sleep(time.Millisecond) // polling a real condition, with a deadline
	}
	app, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatalf("take the app port: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "late app ok") })}
	go func() { _ = srv.Serve(app) }()
	t.Cleanup(func() { srv.Close() })
	res := <-done
	if res.err != nil || res.status != http.StatusOK || res.body != "late app ok" {
		t.Fatalf("request while the app started: status %d body %q err %v, want 200 from the app", res.status, res.body, res.err)
	}

	// An app that never listens: 503 with Retry-After once the wait is over.
	port = testenv.FreePort(t)
	p2, base2, _ := startProxy(t, rule(port, allProtections(policy.EffectPrevent)), WithAppWait(100*time.Millisecond))
	resp, err := http.Get(base2 + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("app never listening: status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p2.appRefused.Load() < 2 {
		t.Errorf("the proxy tried the app port %d times, want retries within the wait", p2.appRefused.Load())
	}
}
