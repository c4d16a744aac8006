//go:build linux && (amd64 || arm64)

package supervise

import (
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// namesSeen records the names of the queries a relay asks about.
type namesSeen struct {
	allowAll
	mu    sync.Mutex
	names []string
}

func (h *namesSeen) DNS(e DNSEvent) Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.names = append(h.names, e.Names...)
	return Deny
}

// TestRelayDrainsQueuedQueries: queries an app sent just before it ended
// wait in the relay's socket; once Run drains its relays, each is still
// asked about (and so audited) before drain returns, with no wait for the
// relay's idle time. Before the drain, Run could return (and the launcher
// exit) with a query unread: CI once saw no name at all.
func TestRelayDrainsQueuedQueries(t *testing.T) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	app, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	want := []string{"a.example", "b.example", "c.example"}
	for _, n := range want {
		if _, err := app.Write(query(t, n+".")); err != nil {
			t.Fatal(err)
		}
	}
	rs := &relaySet{}
	if !rs.add(pc) {
		t.Fatal("a new set refused a relay")
	}
	h := &namesSeen{}
	// The relay starts only after the drain began: the worst case, where
	// its first wait would otherwise be the idle time.
	drained := make(chan struct{})
	go func() { rs.drain(); close(drained) }()
	for !rs.isDraining() {
		runtime.Gosched()
	}
	go func() {
		defer rs.done(pc)
		relayDNS(h, pc, netip.MustParseAddrPort("127.0.0.1:9"), Caller{}, rs)
	}()
	<-drained
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Equal(h.names, want) {
		t.Errorf("names seen %q, want %q", h.names, want)
	}
	if rs.add(pc) {
		t.Error("a draining set took a new relay")
	}
}

func TestRefuse(t *testing.T) {
	q := query(t, "yahoo.com")
	var m dns.Msg
	if err := m.Unpack(refuse(q)); err != nil {
		t.Fatal(err)
	}
	if !m.Response || m.Rcode != dns.RcodeRefused || len(m.Question) != 1 || m.Question[0].Name != "yahoo.com." {
		t.Errorf("refusal %v", m)
	}
	if refuse([]byte("not dns")) != nil {
		t.Error("garbage got an answer")
	}
}

// FuzzRefuse: the relay answers whatever an app sends; it must never panic.
func FuzzRefuse(f *testing.F) {
	f.Add(query(f, "yahoo.com"))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r := refuse(b); r != nil {
			var m dns.Msg
			if err := m.Unpack(r); err != nil || m.Rcode != dns.RcodeRefused {
				t.Fatalf("refusal does not parse as REFUSED: %v", err)
			}
		}
	})
}
