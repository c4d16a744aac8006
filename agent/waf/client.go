package waf

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/taskguard/taskguard/console/policy"
)

// clients finds the client address of a request: the peer, or, when the
// peer is a trusted load balancer, the address that load balancer put in
// the rule's client header (X-Forwarded-For style: the right-most address
// that is not itself a trusted proxy).
type clients struct {
	header  string
	trusted []netip.Prefix
}

func newClients(rule policy.WAFRule) (clients, error) {
	c := clients{header: http.CanonicalHeaderKey(rule.ClientIPHeader)}
	for _, s := range rule.TrustedProxies {
		p, err := policy.ParsePrefix(s)
		if err != nil {
			return clients{}, err
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func (c clients) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addr returns the client address of r; ok is false when the peer address
// cannot be parsed (never for a real connection).
func (c clients) addr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	peer = peer.Unmap()
	if c.header == "" || !c.isTrusted(peer) {
		return peer, true
	}
	values := r.Header[c.header]
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A value the trusted proxy did not write: stop at the
				// last address it vouched for.
				return client, true
			}
			client = a.Unmap()
			if !c.isTrusted(client) {
				return client, true
			}
		}
	}
	return client, true
}
