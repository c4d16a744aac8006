package supervise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// Address families of the sockaddr structures the tracer decodes.
const (
	afInet  = 2
	afInet6 = 10
)

// errNotIP is returned for sockaddrs that are not IPv4 or IPv6 (unix sockets, netlink...).
var errNotIP = errors.New("not an IPv4 or IPv6 socket address")

// parseSockaddr decodes a struct sockaddr_in or sockaddr_in6 as the kernel
// receives it (family in host order, port in network order).
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("sockaddr of %d bytes is too short", len(b))
	}
	switch binary.NativeEndian.Uint16(b) {
	case afInet:
		if len(b) < 8 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in of %d bytes is too short", len(b))
		}
		ip := netip.AddrFrom4([4]byte(b[4:8]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4])), nil
	case afInet6:
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in6 of %d bytes is too short", len(b))
		}
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4])), nil
	}
	return netip.AddrPort{}, errNotIP
}

// dnsQueryNames returns the question names of a DNS query message, as sent
// over UDP or over TCP (with its two-byte length prefix). Responses and
// anything that does not parse as DNS are errors.
func dnsQueryNames(b []byte) ([]string, error) {
	var m dns.Msg
	err := m.Unpack(b)
	if err != nil && len(b) > 2 && int(binary.BigEndian.Uint16(b)) <= len(b)-2 {
		m = dns.Msg{}
		n := int(binary.BigEndian.Uint16(b))
		err = m.Unpack(b[2 : 2+n])
	}
	if err != nil {
		return nil, fmt.Errorf("parse dns query: %w", err)
	}
	if m.Response {
		return nil, errors.New("parse dns query: message is a response")
	}
	if len(m.Question) == 0 {
		return nil, errors.New("parse dns query: no question")
	}
	names := make([]string, 0, len(m.Question))
	for _, q := range m.Question {
		names = append(names, dns.Fqdn(q.Name)[:len(dns.Fqdn(q.Name))-1])
	}
	return names, nil
}
