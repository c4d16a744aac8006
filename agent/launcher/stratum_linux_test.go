//go:build linux && (amd64 || arm64)

package launcher

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// stratumClient is a miner's first step in a few system calls on one
// thread: socket, a blocking connect to addr, then the payload with write(2)
// or send(2) (sendto with no address), then the answer up to EOF.
func stratumClient(addr, how, payload string) int {
	runtime.LockOSThread()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		fmt.Println("address:", err)
		return 2
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		fmt.Println("socket:", err)
		return 2
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		fmt.Println("connect:", err)
		return 2
	}
	switch how {
	case "write":
		_, err = unix.Write(fd, []byte(payload))
	default:
		err = unix.Sendto(fd, []byte(payload), 0, nil)
	}
	if err != nil {
		fmt.Println("send failed:", err)
		return 3
	}
	_ = unix.Shutdown(fd, unix.SHUT_WR)
	fmt.Println("sent")
	return 0
}

// payloadServer accepts one connection and returns what it received up to EOF.
func payloadServer(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, 64<<10))
		ch <- string(b)
	}()
	return ln.Addr().String(), ch
}

const (
	subscribe   = `{"id":1,"method":"mining.subscribe","params":["cpuminer-opt/3.8.8.1"]}` + "\n"
	xmrigLogin  = `{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5k","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/13.2.0","algo":["rx/0"]}}` + "\n"
	httpRequest = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe/1.0\r\n\r\n"
)

// TestDetectStratumHandshake: a real Stratum client (a shell with
// /dev/tcp, and a small program with write or send) handshakes with a
// loopback server; prevent refuses the send, so the server never receives
// the method; an HTTP request on a connection to the same server raises
// nothing. Under seccomp user notification only send/sendmsg are seen.
func TestDetectStratumHandshake(t *testing.T) {
	h := self(t)
	bash := testenv.LookPath(t, "bash", "bash")
	type client struct {
		name string
		argv func(addr, payload string) []string
		env  []string
		// refused is what the client prints when its send fails with EPERM.
		refused string
		notify  bool // seen under user notification too
	}
	clients := []client{
		{"bash write", func(addr, payload string) []string {
			host, port, _ := net.SplitHostPort(addr)
			return []string{bash, "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s; printf '%%s' '%s' >&3; echo rc=$?", host, port, payload)}
		}, nil, "rc=1", false},
		{"program write", func(addr, payload string) []string { return []string{h, addr, "write", payload} }, []string{helperEnv("stratum")}, "send failed: operation not permitted", false},
		{"program send", func(addr, payload string) []string { return []string{h, addr, "send", payload} }, []string{helperEnv("stratum")}, "send failed: operation not permitted", true},
	}
	for _, mech := range []string{"ptrace", "usernotif"} {
		for _, c := range clients {
			if mech == "usernotif" && !c.notify {
				continue
			}
			t.Run(mech+"/"+c.name, func(t *testing.T) {
				supervisorMode = mech
				defer func() { supervisorMode = "ptrace" }()
				for _, tc := range []struct {
					eff           policy.Effect
					payload, want string
				}{
					{policy.EffectPrevent, subscribe, "mining.subscribe"},
					{policy.EffectAlert, xmrigLogin, "login"},
				} {
					t.Run(string(tc.eff), func(t *testing.T) {
						addr, got := payloadServer(t)
						r := launchDetect(t, map[string]policy.Effect{"crypto-miner": tc.eff}, c.argv(addr, strings.TrimSuffix(tc.payload, "\n")), c.env...)
						recv := <-got
						a := checkThreat(t, r, "crypto-miner", tc.eff, "Stratum handshake ("+tc.want+") to "+addr)
						if a.Technique != "T1496" || a.Network == nil || a.Network.Direction != "outbound" || fmt.Sprintf("%s:%d", a.Network.IP, a.Network.Port) != addr {
							t.Errorf("audit %+v network %+v", a, a.Network)
						}
						if n := len(r.threats("crypto-miner")); n != 1 {
							t.Errorf("%d crypto-miner audits, want 1", n)
						}
						if tc.eff == policy.EffectPrevent {
							if strings.Contains(recv, "mining.") || !strings.Contains(r.out, c.refused) {
								t.Errorf("prevent: the server received %q; client output %q, want %q", recv, r.out, c.refused)
							}
						} else if !strings.Contains(recv, `"method":"login"`) {
							t.Errorf("alert: the server received %q, want the login; client output %q", recv, r.out)
						}
					})
				}
				t.Run("benign http", func(t *testing.T) {
					addr, got := payloadServer(t)
					r := launchDetect(t, map[string]policy.Effect{"crypto-miner": policy.EffectPrevent}, c.argv(addr, httpRequest), c.env...)
					if recv := <-got; recv != httpRequest {
						t.Errorf("the server received %q, want the HTTP request; client output %q", recv, r.out)
					}
					for _, a := range r.audits {
						t.Errorf("an HTTP request raised %+v", a)
					}
				})
			})
		}
	}
}
