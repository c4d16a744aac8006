package waf

import (
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// The gate's chains: CRS rules whose head matches ordinary traffic (the
// method is GET, a header is there) and whose later levels decide. The gate
// must evaluate the whole chain and let Coraza report the rule.
func TestGateChainHeads(t *testing.T) {
	gated, plain := gatePairOnce(t)
	tests := []struct {
		name string
		raw  string
		id   int
	}{
		{"GET with a body", "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nContent-Length: 5\r\n\r\nhello", 920170},
		{"HEAD with a body", "HEAD / HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nContent-Length: 3\r\n\r\nabc", 920170},
		{"restricted extension", "GET /backup/x.bak HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n", 920440},
		{"restricted extension after a query", "GET /site.config?v=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n", 920440},
		{"restricted header", "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nProxy: x\r\n\r\n", 920450},
		{"content type not allowed", "POST /submit HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", 920420},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, body, err := parseRaw([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			g := gated.inspect(r, body, false)
			p := plain.inspect(r, body, false)
			if gs, ps := matchSummary(g), matchSummary(p); gs != ps {
				t.Errorf("with the gate\n  %s\nwithout\n  %s", gs, ps)
			}
			if !slices.Contains(p.ruleIDs(), tc.id) {
				t.Errorf("Coraza without the gate does not report %d: %v", tc.id, p.ruleIDs())
			}
			if !slices.Contains(g.ruleIDs(), tc.id) {
				t.Errorf("with the gate %d is not reported: %v (gated phases %d)", tc.id, g.ruleIDs(), g.gated)
			}
		})
	}
}

var (
	gateFuzzOnce         sync.Once
	gateFuzzG, gateFuzzP *engine
	gateFuzzErr          error
)

// gatePairOnce is the all-protections PL1 pair, compiled once per process.
func gatePairOnce(t testing.TB) (gated, plain *engine) {
	t.Helper()
	gateFuzzOnce.Do(func() {
		prot := allProtections(policy.EffectPrevent)
		if gateFuzzG, gateFuzzErr = compileEngine(rule(8081, prot), 1, 4<<10, true); gateFuzzErr != nil {
			return
		}
		gateFuzzP, gateFuzzErr = compileEngine(rule(8081, prot), 1, 4<<10, false)
	})
	if gateFuzzErr != nil {
		t.Fatal(gateFuzzErr)
	}
	return gateFuzzG, gateFuzzP
}

// gateFuzzSeeds are the seeds of FuzzGate and FuzzDirect.
var gateFuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /index.html?page=2&sort=asc HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\nCookie: session=abc123\r\n\r\n",
	"GET /?q=%27%20OR%201%3D1-- HTTP/1.1\r\nHost: x\r\nUser-Agent: sqlmap\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	"GET /x.bak HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nProxy: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 82\r\n\r\n" + seedBody,
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\":[1,{",
	"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\nuser=bob&pass=%3Cscript%3E&x=",
	"POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 60\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--b--\r\n",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 14\r\n\r\n<a><b>1</b></a",
	"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nCookie: a=<script>\r\nX: () { :; }; echo\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"GET /?a=%C0%AF&b=%FF%FE&c=%u0041 HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-,1-,2-,3-,4-,5-\r\n\r\n",
	"OPTIONS * HTTP/1.0\r\n\r\n",
}

// fuzzRequest parses a fuzzed request, its body cut at the fuzzed
// engines' 4 KiB inspection limit.
func fuzzRequest(raw []byte) (*http.Request, []byte, bool) {
	r, body, err := parseRaw(raw)
	if err != nil {
		return nil, nil, false
	}
	if len(body) > 4<<10 {
		body = body[:4<<10]
	}
	return r, body, true
}

// FuzzGate sends raw HTTP requests through the engine with the gate and
// the one without: they must report the same matches. Coraza itself visits
// some collections in map order (multipart part headers, regex-selected
// keys), so a difference counts only when no run of the engine without the
// gate reproduces the gated result.
func FuzzGate(f *testing.F) {
	for _, s := range gateFuzzSeeds {
		f.Add([]byte(s))
	}
	gated, plain := gatePairOnce(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, body, ok := fuzzRequest(raw)
		if !ok {
			return
		}
		g := matchSummary(gated.inspect(r, body, false))
		p := matchSummary(plain.inspect(r, body, false))
		for i := 0; g != p && i < 8; i++ {
			p = matchSummary(plain.inspect(r, body, false))
		}
		if g != p {
			t.Fatalf("with the gate\n  %s\nwithout\n  %s\nrequest %q", g, p, raw)
		}
	})
}
