package waf

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// FuzzClientAddr: any X-Forwarded-For from a trusted peer gives the peer or
// an address written in the header, never a panic; from an untrusted peer
// it is always the peer.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.5", "192.0.2.99, 203.0.113.5", "::1, 10.0.0.1", "unknown, 10.0.0.2", "", ",,,", "[::1]:80", "1.2.3.4%eth0"} {
		f.Add(s, "10.0.0.1:4000")
	}
	c, err := newClients(policy.WAFRule{ClientIPHeader: "X-Forwarded-For", TrustedProxies: []string{"10.0.0.0/8"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, xff, remote string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		a, ok := c.addr(r)
		if !ok {
			return
		}
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		peer, err := netip.ParseAddr(host)
		if err != nil {
			return
		}
		peer = peer.Unmap()
		if !c.isTrusted(peer) && a != peer {
			t.Fatalf("untrusted peer %s: client %s taken from the header", peer, a)
		}
		if a == peer {
			return
		}
		found := false
		for _, part := range strings.Split(xff, ",") {
			if b, err := netip.ParseAddr(strings.TrimSpace(part)); err == nil && b.Unmap() == a {
				found = true
			}
		}
		if !found {
			t.Fatalf("client %s neither the peer %s nor an address of %q", a, peer, xff)
		}
	})
}

// FuzzAPICheck: any request path, query and body checked against an
// OpenAPI document gives an answer, never a panic.
func FuzzAPICheck(f *testing.F) {
	spec, err := newAPISpec(shopSpec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("POST", "/api/orders", "", `{"sku":"SKU-000001","qty":2}`)
	f.Add("GET", "/api/orders/42", "fields=full", "")
	f.Add("GET", "/api/orders/%zz", "fields=%", "")
	f.Add("POST", "/api/orders", "", `{"sku":[{"a":{"b":null}}],"qty":1e999}`)
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		r, err := http.NewRequest("GET", "http://shop.example.com/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Method, r.URL.Path, r.URL.RawQuery = method, path, query
		r.Header.Set("Content-Type", "application/json")
		_ = spec.check(context.Background(), r, []byte(body), false)
	})
}
