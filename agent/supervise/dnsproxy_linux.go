//go:build linux && (amd64 || arm64)

package supervise

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
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

// relaySet is the relays one Run started. A query the app sent just before
// it ended waits in its relay's socket: Run drains every relay before it
// returns, so that query is seen (and audited) before the launcher exits.
// It holds the relays alive only: a relay that ended leaves it (done), so a
// long-running app that resolves names all day (a relay per UDP connect to
// port 53) does not grow it.
type relaySet struct {
	mu       sync.Mutex
	draining bool
	conns    map[*net.UDPConn]struct{}
	wg       sync.WaitGroup
	// idle is how long a relay waits for a query before it ends
	// (relayIdle when zero; tests shorten it).
	idle time.Duration
}

// onRelaySet, when set (tests), is called with the relay set of each Run.
var onRelaySet func(*relaySet)

// add registers pc, served by a relay goroutine from now on, until done(pc);
// false once the set drains (the caller closes pc and does not redirect).
func (rs *relaySet) add(pc *net.UDPConn) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.draining {
		return false
	}
	if rs.conns == nil {
		rs.conns = map[*net.UDPConn]struct{}{}
	}
	rs.conns[pc] = struct{}{}
	rs.wg.Add(1)
	return true
}

// done removes pc, whose relay ended (or never started), from the set.
func (rs *relaySet) done(pc *net.UDPConn) {
	rs.mu.Lock()
	delete(rs.conns, pc)
	rs.mu.Unlock()
	rs.wg.Done()
}

// alive is how many relays the set holds.
func (rs *relaySet) alive() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.conns)
}

// deadline sets pc's read deadline for one wait of its relay: the idle
// time, or now once the set drains (so the read returns at once).
func (rs *relaySet) deadline(pc *net.UDPConn) (draining bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.draining {
		_ = pc.SetReadDeadline(time.Now())
		return true
	}
	idle := rs.idle
	if idle <= 0 {
		idle = relayIdle
	}
	_ = pc.SetReadDeadline(time.Now().Add(idle))
	return false
}

// isDraining reports whether the set drains.
func (rs *relaySet) isDraining() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.draining
}

// drain wakes every relay, which handles the queries already queued on its
// socket and ends, and waits for them.
func (rs *relaySet) drain() {
	rs.mu.Lock()
	rs.draining = true
	for pc := range rs.conns {
		_ = pc.SetReadDeadline(time.Now())
	}
	rs.mu.Unlock()
	rs.wg.Wait()
}

// redirectDNS points the connect at addr (sockaddr of size bytes in tid's
// memory, destination server) to a new relay. It reports whether it did.
func (t *tracer) redirectDNS(tid, fd int, addr, size uint64, server netip.AddrPort) bool {
	udp := false
	_ = socketOf(tid, fd, func(s int) error {
		typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
		udp = err == nil && typ == unix.SOCK_DGRAM
		return err
	})
	if !udp || t.relays == nil || activeRelays.Load() >= maxRelays {
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
	if !t.relays.add(pc) {
		pc.Close()
		return false
	}
	if n, err := unix.ProcessVMWritev(tid, local, remote, 0); err != nil || n != len(sa) {
		pc.Close()
		t.relays.done(pc)
		return false
	}
	activeRelays.Add(1)
	caller := Caller{PID: tid, Exe: t.exeOf(tid), Real: t.realOf(tid)}
	go func() {
		defer t.relays.done(pc)
		defer activeRelays.Add(-1)
		relayDNS(t.h, pc, server, caller, t.relays)
	}()
	return true
}

// relayDNS serves one redirected socket until it is idle, or, once rs
// drains, until no query is left queued on it.
func relayDNS(h Handler, pc *net.UDPConn, server netip.AddrPort, caller Caller, rs *relaySet) {
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
	serve := func(q []byte, from *net.UDPAddr) {
		client.Store(from)
		if names, err := dnsQueryNames(q); err == nil &&
			h.DNS(DNSEvent{Caller: caller, Names: names, Server: server, Relayed: true}) == Deny {
			if refused := refuse(q); refused != nil {
				_, _ = pc.WriteToUDP(refused, from)
			}
			return
		}
		_, _ = up.Write(q)
	}
	buf := make([]byte, 65535)
	for !rs.deadline(pc) {
		n, from, err := pc.ReadFromUDP(buf)
		if err != nil {
			if rs.isDraining() {
				break
			}
			return // idle (deadline) or closed
		}
		serve(buf[:n], from)
	}
	// Draining: the queries queued on the socket, read without waiting.
	_ = pc.SetReadDeadline(time.Time{})
	rc, err := pc.SyscallConn()
	if err != nil {
		return
	}
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return true
		}); err != nil || rerr != nil {
			return
		}
		ap, ok := sockaddrPort(from)
		if !ok {
			continue
		}
		serve(buf[:n], net.UDPAddrFromAddrPort(ap))
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
