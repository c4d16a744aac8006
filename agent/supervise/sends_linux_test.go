//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/internal/testenv"
)

// sendsArg makes the test binary the app of TestConnectedSendsCaught:
// argv [self, sendsArg, TCP-ADDR, UDP-PORT].
const sendsArg = "__taskguard_test_sends"

func init() {
	if len(os.Args) != 4 || os.Args[1] != sendsArg {
		return
	}
	if err := sendsApp(os.Args[2], os.Args[3]); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// sendsApp sends as a C program does (send, sendmsg on connected sockets):
// a datagram on a UDP socket connected elsewhere first (its peer is then
// known to the supervisor), then, on the same socket connected to port 53,
// a DNS query; and a Stratum subscribe with sendmsg on a TCP connection.
func sendsApp(tcpAddr, udpPort string) error {
	port, _ := strconv.Atoi(udpPort)
	u, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	if err := unix.Connect(u, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("udp connect: %w", err)
	}
	if err := unix.Send(u, []byte("x"), 0); err != nil {
		return fmt.Errorf("udp send: %w", err)
	}
	if err := unix.Connect(u, &unix.SockaddrInet4{Port: 53, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("udp connect to 53: %w", err)
	}
	m := new(dns.Msg)
	m.SetQuestion("blocked.example.", dns.TypeA)
	q, _ := m.Pack()
	fmt.Println("dns send:", unix.Send(u, q, 0))
	ap, err := net.ResolveTCPAddr("tcp4", tcpAddr)
	if err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := unix.Connect(s, sa); err != nil {
		return fmt.Errorf("tcp connect: %w", err)
	}
	_, err = unix.SendmsgN(s, []byte(`{"id":1,"method":"mining.subscribe","params":[]}`+"\n"), nil, nil, 0)
	fmt.Println("stratum sendmsg:", err)
	return nil
}

// sendsRecorder records DNS names and refuses payloads with "mining.".
type sendsRecorder struct {
	payloadRecorder
	dnsMu sync.Mutex
	names []string
}

func (r *sendsRecorder) DNS(e DNSEvent) Verdict {
	r.dnsMu.Lock()
	defer r.dnsMu.Unlock()
	r.names = append(r.names, e.Names...)
	return Deny
}

// TestConnectedSendsCaught: with the peers of connected sockets cached,
// a DNS query sent with send(2) on a UDP socket that was connected
// elsewhere before and a Stratum subscribe sent with sendmsg(2) are still
// inspected under both mechanisms, and the subscribe is refused; the query
// is seen by the relay, or, with no relay left, at the send itself (and
// refused there), which needs the cached peer forgotten at the connect.
func TestConnectedSendsCaught(t *testing.T) {
	testenv.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		mode  Mode
		relay bool
	}{{"ptrace", ModePtrace, true}, {"notify", ModeUserNotify, true}, {"ptrace-norelay", ModePtrace, false}, {"notify-norelay", ModeUserNotify, false}} {
		m := c.mode
		t.Run(c.name, func(t *testing.T) {
			if !c.relay {
				// Every relay taken: the connect to port 53 is not
				// redirected, and the query is seen at the send, through
				// the socket's peer, which was cached as the first one.
				prev := activeRelays.Swap(maxRelays)
				defer activeRelays.Store(prev)
			}
			addr, got := sink(t, 1)
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			h := &sendsRecorder{payloadRecorder: payloadRecorder{deny: "mining."}}
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			st, err := Run(Config{Path: self, Argv: []string{self, sendsArg, addr, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)},
				Files: [3]*os.File{nil, out, out}, Handler: h, Mode: m})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out.Name())
			if st.Code != 0 || !strings.Contains(string(b), "stratum sendmsg: operation not permitted") {
				t.Errorf("status %+v, output %q: want the subscribe refused with EPERM", st, b)
			}
			if data := <-got; data != "" {
				t.Errorf("the server received %q, want nothing", data)
			}
			h.dnsMu.Lock()
			names := slices.Clone(h.names)
			h.dnsMu.Unlock()
			if !slices.Contains(names, "blocked.example") && !slices.Contains(names, "blocked.example.") {
				t.Errorf("DNS names seen %q, want blocked.example (sent with send(2) on a reconnected UDP socket)", names)
			}
			if !c.relay && !strings.Contains(string(b), "dns send: operation not permitted") {
				t.Errorf("output %q: want the query refused at the send (EPERM)", b)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			// The UDP datagram "x" is a watched first payload too.
			if len(h.got) != 2 || string(h.got[0].Data) != "x" || !strings.Contains(string(h.got[1].Data), "mining.subscribe") || h.got[1].Call != "sendmsg" {
				t.Errorf("payloads %+v, want x and the subscribe, by sendmsg", h.got)
			}
			t.Logf("stops %+v, output %q", st.Stops, b)
		})
	}
}

// TestFDLinkEndedTask: fdLink reads a live process's fd through the
// /proc/PID/fd directory it keeps open, and once the process ended (its
// number free for another) the kept directory gives an error, never an
// answer, and is let go.
func TestFDLinkEndedTask(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "read x"}, &os.ProcAttr{Files: []*os.File{r, nil, nil}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{}
	defer tr.closeFDDirs()
	link, err := tr.fdLink(p.Pid, 0)
	if err != nil || !strings.HasPrefix(link, "pipe:") {
		t.Fatalf("fdLink(%d, 0) = %q, %v; want the pipe", p.Pid, link, err)
	}
	if len(tr.fdDirs) != 1 {
		t.Fatalf("%d directories held, want 1", len(tr.fdDirs))
	}
	w.Close()
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if link, err := tr.fdLink(p.Pid, 0); err == nil {
		t.Errorf("fdLink of an ended process = %q, want an error", link)
	}
	if _, held := tr.fdDirs[p.Pid]; held {
		t.Errorf("the directory of the ended process is still held")
	}
}

// TestIgnoreSends: with Config.IgnoreSends the filter lets sends run
// with no stop under both mechanisms (100 UDP sends cost no stop; the
// socket's bind and connect still do), and without it every send stops.
func TestIgnoreSends(t *testing.T) {
	testenv.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for _, m := range modes {
		for _, ignore := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ignore=%v", m, ignore), func(t *testing.T) {
				st, err := Run(Config{Path: self, Argv: []string{self, benchSendArg, strconv.Itoa(n)}, Handler: allowWatch{}, Mode: m, IgnoreSends: ignore})
				if err != nil || st.Code != 0 {
					t.Fatalf("run: %v, status %+v", err, st)
				}
				if ignore && (st.Stops.Calls >= n || st.Stops.Calls == 0) {
					t.Errorf("%d supervised calls with IgnoreSends, want the bind and connect only (0 < calls < %d)", st.Stops.Calls, n)
				}
				if !ignore && st.Stops.Calls < n {
					t.Errorf("%d supervised calls, want at least the %d sends", st.Stops.Calls, n)
				}
			})
		}
	}
}
