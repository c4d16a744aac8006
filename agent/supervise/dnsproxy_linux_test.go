//go:build linux && (amd64 || arm64)

package supervise

import (
	"testing"

	"github.com/miekg/dns"
)

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
