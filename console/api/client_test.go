package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewClientAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"console.example.com:8083", "https://console.example.com:8083"},
		{"https://c.example.com", "https://c.example.com"},
		{"http://127.0.0.1:8083", "http://127.0.0.1:8083"},
	} {
		c, err := NewClient(tc.in)
		if err != nil || c.base.String() != tc.want {
			t.Errorf("NewClient(%q) = %v, %v; want %s", tc.in, c, err, tc.want)
		}
	}
	for _, bad := range []string{"ftp://x", "https://", "::::"} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
}

func TestClientRequestsAndErrors(t *testing.T) {
	var got *http.Request
	var gotBody string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		switch r.URL.Path {
		case PathFargateJSON:
			w.Write([]byte(`{"family":"protected"}`))
		case PathUsers:
			w.Header().Set("Retry-After", "42")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":"too many failed logins"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`<html>proxy error</html>`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	c, _ := NewClient(srv.URL, WithHTTPClient(srv.Client()), WithToken("tgu_secret"))
	out, err := c.ProtectFargate(ctx, []byte(`{"family":"f"}`), ProtectOptions{
		ConsoleAddr: "console:8083", DefenderImage: "reg/defender:1", ExtractEntrypoint: true,
		AgentTokenSecret: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tg",
	})
	if err != nil || string(out) != `{"family":"protected"}` {
		t.Fatalf("ProtectFargate = %s, %v", out, err)
	}
	if got.Method != "POST" || got.Header.Get("Authorization") != "Bearer tgu_secret" || got.Header.Get("Content-Type") != "application/json" || gotBody != `{"family":"f"}` {
		t.Errorf("request: %s %v body %q", got.Method, got.Header, gotBody)
	}
	q := got.URL.Query()
	if q.Get("consoleaddr") != "console:8083" || q.Get("defenderImage") != "reg/defender:1" || q.Get("extractEntrypoint") != "true" ||
		!strings.HasPrefix(q.Get("agentTokenSecret"), "arn:aws:secretsmanager:") {
		t.Errorf("query = %v", q)
	}

	c, _ = NewClient(srv.URL, WithHTTPClient(srv.Client()), WithBasicAuth("u", "p"))
	_, err = c.Users(ctx)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.RetryAfter != 42 || se.Message != "too many failed logins" {
		t.Fatalf("Users error = %#v", err)
	}
	if u, p, ok := got.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth not sent")
	}
	err = c.Ping(ctx)
	if !IsStatus(err, http.StatusBadGateway) || strings.Contains(err.Error(), "<html>") {
		t.Errorf("Ping through a broken proxy: %v", err)
	}
}
