package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePort: the port lies below the ephemeral range and can be bound.
func TestFreePort(t *testing.T) {
	low, err := ephemeralLow()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		p := FreePort(t)
		if int(p) >= low || p < 10000 {
			t.Fatalf("port %d outside 10000-%d", p, low-1)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p))))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		l.Close()
	}
}
