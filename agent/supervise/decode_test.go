package supervise

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func sockaddr4(ip [4]byte, port uint16) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint16(b, afInet)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return b
}

func sockaddr6(ip [16]byte, port uint16) []byte {
	b := make([]byte, 28)
	binary.NativeEndian.PutUint16(b, afInet6)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[8:], ip[:])
	return b
}

func TestParseSockaddr(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::53")
	tests := []struct {
		name    string
		in      []byte
		want    netip.AddrPort
		wantErr bool
	}{
		{"ipv4", sockaddr4([4]byte{10, 0, 0, 1}, 53), netip.MustParseAddrPort("10.0.0.1:53"), false},
		{"ipv6", sockaddr6(v6.As16(), 443), netip.AddrPortFrom(v6, 443), false},
		{"unix", []byte{1, 0, '/', 't'}, netip.AddrPort{}, true},
		{"short ipv4", sockaddr4([4]byte{1, 2, 3, 4}, 1)[:6], netip.AddrPort{}, true},
		{"short ipv6", sockaddr6(v6.As16(), 1)[:20], netip.AddrPort{}, true},
		{"empty", nil, netip.AddrPort{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockaddr(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSockaddr = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func query(t testing.TB, names ...string) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(names[0]), dns.TypeA)
	for _, n := range names[1:] {
		m.Question = append(m.Question, dns.Question{Name: dns.Fqdn(n), Qtype: dns.TypeAAAA, Qclass: dns.ClassINET})
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDNSQueryNames(t *testing.T) {
	udp := query(t, "yahoo.com", "www.google.com")
	tcp := append(binary.BigEndian.AppendUint16(nil, uint16(len(udp))), udp...)
	resp := new(dns.Msg)
	resp.SetReply(new(dns.Msg).SetQuestion("yahoo.com.", dns.TypeA))
	respBytes, _ := resp.Pack()
	tests := []struct {
		name    string
		in      []byte
		want    []string
		wantErr bool
	}{
		{"udp", udp, []string{"yahoo.com", "www.google.com"}, false},
		{"tcp length prefix", tcp, []string{"yahoo.com", "www.google.com"}, false},
		{"response", respBytes, nil, true},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), nil, true},
		{"empty", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dnsQueryNames(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("names = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("names = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func FuzzDNSQueryNames(f *testing.F) {
	f.Add(query(f, "yahoo.com"))
	f.Add(query(f, "a.b.c.example.org", "x.y"))
	f.Add([]byte{0, 5, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := dnsQueryNames(b)
		if err == nil && len(names) == 0 {
			t.Fatal("no error and no names")
		}
	})
}

func FuzzParseSockaddr(f *testing.F) {
	f.Add(sockaddr4([4]byte{127, 0, 0, 1}, 80))
	f.Add(sockaddr6([16]byte{15: 1}, 53))
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := parseSockaddr(b)
		if err == nil && !ap.Addr().IsValid() {
			t.Fatal("no error and no address")
		}
	})
}
