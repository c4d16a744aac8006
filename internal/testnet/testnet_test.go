//go:build linux

package testnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// TestNamespaceIsolation: a listener on a fixed loopback port inside one
// test namespace is reachable from inside it, not from the host, and a
// second namespace can bind the same port at the same time.
func TestNamespaceIsolation(t *testing.T) {
	testenv.RequireRoot(t)
	a, b := New(t), New(t)
	la, err := a.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatalf("listen in a: %v", err)
	}
	defer la.Close()
	lb, err := b.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatalf("the same port in a second namespace: %v", err)
	}
	defer lb.Close()
	go func() {
		for {
			c, err := la.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "from a")
			c.Close()
		}
	}()
	c, err := a.DialContext(context.Background(), "tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatalf("dial inside a: %v", err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "from a" {
		t.Errorf("inside a read %q", got)
	}
	// From the host, 127.0.0.1:80 is not the namespace's listener.
	if c, err := net.Dial("tcp", la.Addr().String()); err == nil {
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) == "from a" {
			t.Error("the namespace's listener answered on the host's loopback")
		}
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("host dial: %v", err)
	}
	// A process started in the namespace sees only its loopback.
	cmd := exec.Command("cat", "/proc/net/dev")
	var out strings.Builder
	cmd.Stdout = &out
	if err := a.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	var ifaces []string
	for _, l := range strings.Split(out.String(), "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			ifaces = append(ifaces, name)
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Errorf("interfaces in the namespace %q, want only lo", ifaces)
	}
}

// TestAddAddrs: an address added to the namespace's loopback (IPv4 and
// IPv6) takes a listener at once.
func TestAddAddrs(t *testing.T) {
	testenv.RequireRoot(t)
	n := New(t)
	addrs := []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fd77::1")}
	if err := n.AddAddrs(addrs...); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		l, err := n.Listen("tcp", netip.AddrPortFrom(a, 80).String())
		if err != nil {
			t.Fatalf("listen on %s: %v", a, err)
		}
		l.Close()
	}
}
