//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// relaysArg makes the test binary the app of TestRelaysLeaveTheSet:
// argv [self, relaysArg, N].
const relaysArg = "__taskguard_test_relays"

func init() {
	if len(os.Args) != 3 || os.Args[1] != relaysArg {
		return
	}
	n, _ := strconv.Atoi(os.Args[2])
	answered, err := relaysApp(n)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("answered:", answered)
	os.Exit(0)
}

// relaysApp resolves n names as Go's resolver does, each on a new UDP
// socket connected to port 53 (a new relay each) and written with
// write(2); it returns how many were answered REFUSED. A query whose relay
// ended before it came (idle) is refused by the kernel (ECONNREFUSED) or
// not answered within the receive timeout; it only does not count.
func relaysApp(n int) (answered int, err error) {
	buf := make([]byte, 512)
	for i := range n {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return answered, err
		}
		_ = unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
		if err := unix.Connect(s, &unix.SockaddrInet4{Port: 53, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			unix.Close(s)
			return answered, fmt.Errorf("connect to port 53: %w", err)
		}
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("q%d.blocked.example.", i), dns.TypeA)
		q, _ := m.Pack()
		if _, err := unix.Write(s, q); err == nil {
			if k, err := unix.Read(s, buf); err == nil {
				var r dns.Msg
				if r.Unpack(buf[:k]) == nil && r.Rcode == dns.RcodeRefused {
					answered++
				}
			}
		}
		unix.Close(s)
	}
	return answered, nil
}

// relayWatch denies every DNS query and records the most relays its
// Run's set held while a query was decided.
type relayWatch struct {
	allowAll
	mu      sync.Mutex
	rs      *relaySet
	queries int
	most    int
}

func (h *relayWatch) DNS(DNSEvent) Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queries++
	h.most = max(h.most, h.rs.alive())
	return Deny
}

// TestRelaysLeaveTheSet: every UDP connect to port 53 starts a DNS relay
// (Go's resolver makes one per lookup), and a relay that ended leaves its
// Run's set. The set kept every relay it was ever given, for the life of
// the app: an app resolving names all day grew the launcher without end.
// 1,000 lookups, each on a new socket, with relays that end soon after
// their query: the set never holds more relays than may be alive at once
// (maxRelays) and is empty once Run returns, and Run leaves no descriptor
// open.
func TestRelaysLeaveTheSet(t *testing.T) {
	const lookups = 1000
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			run := func(h *relayWatch, n int) (Status, []byte) {
				t.Helper()
				onRelaySet = func(rs *relaySet) {
					rs.idle = 50 * time.Millisecond
					h.rs = rs
				}
				defer func() { onRelaySet = nil }()
				out, err := os.Create(filepath.Join(dir, "out"+strconv.Itoa(n)))
				if err != nil {
					t.Fatal(err)
				}
				defer out.Close()
				st, err := Run(Config{Path: self, Argv: []string{self, relaysArg, strconv.Itoa(n)},
					Files: [3]*os.File{nil, out, out}, Handler: h, Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(out.Name())
				return st, b
			}
			// A first Run opens what the runtime keeps for good (the
			// network poller's descriptors): the count starts after it.
			run(&relayWatch{}, 1)
			fds := testenv.OpenFDs(t)
			h := &relayWatch{}
			st, b := run(h, lookups)
			if st.Code != 0 {
				t.Fatalf("app exit %d: %s", st.Code, b)
			}
			var answered int
			if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "answered: %d", &answered); err != nil {
				t.Fatalf("app output %q: %v", b, err)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Logf("%d of %d lookups answered by a relay, %d queries decided, at most %d relays held", answered, lookups, h.queries, h.most)
			// More relays than may be alive at once: relays ended, and
			// new ones came, during the run.
			if answered <= 2*maxRelays {
				t.Fatalf("only %d of %d lookups went through a relay; want more than %d", answered, lookups, 2*maxRelays)
			}
			if h.most > maxRelays {
				t.Errorf("the relay set held %d relays during the run; at most %d are alive at once", h.most, maxRelays)
			}
			if n := h.rs.alive(); n != 0 {
				t.Errorf("the relay set holds %d relays after Run returned, want 0", n)
			}
			if n := activeRelays.Load(); n != 0 {
				t.Errorf("%d relays counted alive after Run returned", n)
			}
			if after := testenv.OpenFDs(t); after != fds {
				t.Errorf("%d open descriptors after Run, %d before", after, fds)
			}
		})
	}
}
