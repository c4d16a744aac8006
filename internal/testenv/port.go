package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreePort returns a loopback TCP port, free a moment ago, for a server the
// test starts later at a fixed port (a WAF rule's external port, a published
// container port).
//
// The port lies below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), so no listener on port 0 and no outgoing
// connection of another test running meanwhile can take it before the
// test's server binds it: a port from net.Listen(":0") can, and a test that
// then found another test's HTTPS console there failed.
func FreePort(t testing.TB) uint16 {
	t.Helper()
	low, err := ephemeralLow()
	if err != nil {
		t.Fatal(err)
	}
	const first = 10000
	if low <= first+1000 {
		t.Fatalf("ephemeral ports start at %d: no room below them for fixed test ports", low)
	}
	for range 200 {
		p := first + rand.IntN(low-first)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return uint16(p)
	}
	t.Fatalf("no free loopback port in %d-%d after 200 tries", first, low-1)
	return 0
}

// ephemeralLow reads the first port of the kernel's ephemeral range.
func ephemeralLow() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, fmt.Errorf("read the ephemeral port range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("ephemeral port range %q: want two numbers", b)
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("ephemeral port range %q: %w", b, err)
	}
	return low, nil
}
