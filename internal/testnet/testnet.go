//go:build linux

// Package testnet gives a test a network namespace of its own: a fresh,
// anonymous namespace with only its loopback, up. Servers the test opens
// there (DNS on port 53, web sites on port 80, a console) take no port of
// the host's, so parallel test packages and two CI checkouts on one machine
// do not collide, and nothing is left to clean up by name: the namespace
// goes when its last handle, socket and process do. Processes started with
// Start (podman with slirp4netns, whose 10.0.2.2 is then this namespace's
// 127.0.0.1) live in it too. It is imported only by tests and needs root.
package testnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a test's network namespace.
type NS struct {
	h netns.NsHandle
}

// New makes a namespace for t, with its loopback up; t's cleanup closes the
// handle (the namespace ends once the sockets and processes in it have).
func New(t testing.TB) *NS {
	t.Helper()
	n := &NS{h: netns.None()}
	err := do(func() error {
		h, err := netns.New() // also moves this (locked, new) thread into it
		if err != nil {
			return fmt.Errorf("new network namespace: %w", err)
		}
		n.h = h
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("loopback up: %w", err)
		}
		return nil
	}, netns.None())
	if n.h.IsOpen() {
		t.Cleanup(func() { n.h.Close() })
	}
	if err != nil {
		t.Fatalf("test network namespace: %v", err)
	}
	return n
}

// do runs f on a fresh goroutine locked to its OS thread, entering target
// first (unless it is None), and puts the thread back into the original
// namespace after; a thread that cannot go back is not reused (it stays
// locked and ends with its goroutine).
func do(f func() error, target netns.NsHandle) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return // the thread is locked: it ends with the goroutine
		}
		defer orig.Close()
		if target.IsOpen() {
			if err := netns.Set(target); err != nil {
				errc <- fmt.Errorf("enter the test's network namespace: %w", err)
				return
			}
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the original network namespace: %w (after %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Do runs f on an OS thread inside the namespace: sockets it opens and
// processes it starts live there.
func (n *NS) Do(f func() error) error { return do(f, n.h) }

// Listen opens a stream listener inside the namespace (e.g. "127.0.0.1:80").
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet listener inside the namespace.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext connects from inside the namespace; it fits
// http.Transport.DialContext.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Start starts cmd inside the namespace (only its network namespace
// differs: mounts, PIDs and the rest are the test's).
func (n *NS) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// AddAddrs puts addresses on the namespace's loopback (each alone: /32 or
// /128; IPv6 without duplicate address detection, so usable at once), for
// servers that must answer at a given address, such as the resolver of the
// host's resolv.conf or a web site's fixed IP.
func (n *NS) AddAddrs(addrs ...netip.Addr) error {
	return n.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		for _, a := range addrs {
			bits := a.BitLen()
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}, Flags: unix.IFA_F_NODAD}
			if err := netlink.AddrAdd(lo, addr); err != nil {
				return fmt.Errorf("add %s to lo: %w", a, err)
			}
		}
		return nil
	})
}
