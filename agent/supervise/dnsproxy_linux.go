//go:build linux && (amd64 || arm64)

package supervise

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// DNS sent with write(2) on a connected UDP socket (Go's own resolver, for
// one) passes no supervised call. So a UDP connect to port 53 is redirected
// to a one-off relay on loopback that reads each query, asks the Handler and
// forwards allowed queries to the server the app chose. A denied query is
// answered REFUSED, so the app's resolution fails at once.

const (
	maxRelays = 128              // relays alive at once; beyond, connects are not redirected
	relayIdle = 10 * time.Second // a relay without traffic for this long closes
)

var activeRelays atomic.Int32

// redirectDNS points the connect at addr (sockaddr of size bytes in tid's
// memory, destination server) to a new relay. It reports whether it did.
func (t *tracer) redirectDNS(tid, fd int, addr, size uint64, server netip.AddrPort) bool {
	udp := false
	_ = socketOf(tid, fd, func(s int) error {
		typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
		udp = err == nil && typ == unix.SOCK_DGRAM
		return err
	})
	if !udp || activeRelays.Load() >= maxRelays {
		return false
	}
	v6 := size >= 24 && server.Addr().Is6() // the socket's family: sockaddr_in6
	loop := netip.MustParseAddr("127.0.0.1")
	if v6 {
		loop = netip.IPv6Loopback()
	}
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loop, 0)))
	if err != nil {
		return false
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	var sa []byte
	if v6 {
		sa = make([]byte, 28)
		binary.NativeEndian.PutUint16(sa, afInet6)
		l := loop.As16()
		copy(sa[8:24], l[:])
	} else {
		sa = make([]byte, 16)
		binary.NativeEndian.PutUint16(sa, afInet)
		l := loop.As4()
		copy(sa[4:8], l[:])
	}
	binary.BigEndian.PutUint16(sa[2:], port)
	local := []unix.Iovec{{Base: &sa[0], Len: uint64(len(sa))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(sa)}}
	if n, err := unix.ProcessVMWritev(tid, local, remote, 0); err != nil || n != len(sa) {
		pc.Close()
		return false
	}
	activeRelays.Add(1)
	caller := Caller{PID: tid, Exe: t.exeOf(tid), Real: t.realOf(tid)}
	go func() {
		defer activeRelays.Add(-1)
		relayDNS(t.h, pc, server, caller)
	}()
	return true
}

// relayDNS serves one redirected socket until it is idle.
func relayDNS(h Handler, pc *net.UDPConn, server netip.AddrPort, caller Caller) {
	defer pc.Close()
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return
	}
	defer up.Close()
	var client atomic.Pointer[net.UDPAddr]
	go func() { // answers from the server go back to the app
		buf := make([]byte, 65535)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil {
				_, _ = pc.WriteToUDP(buf[:n], c)
			}
		}
	}()
	buf := make([]byte, 65535)
	for {
		_ = pc.SetReadDeadline(time.Now().Add(relayIdle))
		n, from, err := pc.ReadFromUDP(buf)
		if err != nil {
			return // idle (deadline) or closed
		}
		client.Store(from)
		q := buf[:n]
		if names, err := dnsQueryNames(q); err == nil &&
			h.DNS(DNSEvent{Caller: caller, Names: names, Server: server, Relayed: true}) == Deny {
			if refused := refuse(q); refused != nil {
				_, _ = pc.WriteToUDP(refused, from)
			}
			continue
		}
		_, _ = up.Write(q)
	}
}

// refuse builds the REFUSED answer to query q.
func refuse(q []byte) []byte {
	var m dns.Msg
	if err := m.Unpack(q); err != nil {
		return nil
	}
	r := new(dns.Msg)
	r.SetRcode(&m, dns.RcodeRefused)
	b, err := r.Pack()
	if err != nil {
		return nil
	}
	return b
}
