package waf

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskguard/taskguard/console/policy"
)

// FuzzInspect feeds raw HTTP requests (what a client puts on the wire) through
// the server-side request parser and the inspection: no input may panic, and
// every verdict and audit excerpt must stay within its bounds.
func FuzzInspect(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /?q=%27%20OR%201%3D1-- HTTP/1.1\r\nHost: x\r\nUser-Agent: sqlmap\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 82\r\n\r\n" + seedBody,
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\":[1,{",
		"POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 60\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--b--\r\n",
		"POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 14\r\n\r\n<a><b>1</b></a",
		"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nCookie: a=<script>\r\nX: () { :; }; echo\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	e, err := newEngine(rule(8081, allProtections(policy.EffectPrevent)), 1, 4<<10)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, body, err := parseRaw(raw)
		if err != nil {
			return // net/http rejects it before any handler runs
		}
		if len(body) > 4<<10 {
			body = body[:4<<10]
		}
		v := e.inspect(r, body, false)
		switch v.effect {
		case policy.EffectDisable:
		case policy.EffectPrevent:
			if v.score < anomalyThreshold || len(v.protections) == 0 {
				t.Fatalf("prevent with score %d, protections %v", v.score, v.protections)
			}
		default:
			t.Fatalf("effect %q under an all-prevent rule", v.effect)
		}
		p := excerpt(v)
		if len(p) > MaxPayload+len("…") || !utf8.ValidString(p) {
			t.Fatalf("excerpt of %d bytes, valid UTF-8 %v", len(p), utf8.ValidString(p))
		}
		for _, c := range r.Cookies() {
			if len(c.Value) >= 8 && strings.Contains(p, c.Value) {
				t.Fatalf("excerpt %q carries cookie value %q", p, c.Value)
			}
		}
	})
}
