//go:build linux && (amd64 || arm64)

package supervise

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// payloads records the payloads of every outbound connection and denies
// those that contain deny.
type payloadRecorder struct {
	recorder
	mu   sync.Mutex
	deny string
	got  []PayloadEvent
}

func (p *payloadRecorder) WantPayload(ConnectEvent) bool { return true }

func (p *payloadRecorder) Payload(e PayloadEvent) Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.Data = append([]byte(nil), e.Data...)
	p.got = append(p.got, e)
	if p.deny != "" && strings.Contains(string(e.Data), p.deny) {
		return Deny
	}
	return Allow
}

// sink accepts connections and returns what each received, in order.
func sink(t *testing.T, n int) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, n)
	go func() {
		defer ln.Close()
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			c.Close()
			ch <- string(b)
		}
	}()
	return ln.Addr().String(), ch
}

func runBash(t *testing.T, mode Mode, h Handler, script string) (Status, string) {
	t.Helper()
	bash := testenv.LookPath(t, "bash", "bash")
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	st, err := Run(Config{Path: bash, Argv: []string{"bash", "-c", script}, Env: []string{"PATH=/bin:/usr/bin"}, Files: [3]*os.File{nil, out, out}, Handler: h, Mode: mode})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, _ := os.ReadFile(out.Name())
	return st, string(b)
}

// TestFollowFirstPayload: under ptrace the first write on a new connection
// reaches the handler (only the first, only on that socket, within a few
// followed stops), a Deny refuses it, and a thread that never sends on it is
// followed for at most FollowCalls calls.
func TestFollowFirstPayload(t *testing.T) {
	addr, got := sink(t, 3)
	host, port, _ := net.SplitHostPort(addr)
	h := &payloadRecorder{deny: "mining."}
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%[1]s/%[2]s; echo -n first >&3; echo -n second >&3; exec 3>&-
exec 4<>/dev/tcp/%[1]s/%[2]s; echo -n '{"method":"mining.subscribe"}' >&4; echo rc=$?; exec 4>&-
exec 5<>/dev/tcp/%[1]s/%[2]s; for i in $(seq 1 100); do : < /dev/null; done; echo done; exec 5>&-`, host, port)
	st, out := runBash(t, ModePtrace, h, script)
	if st.Code != 0 || !strings.Contains(out, "rc=1") || !strings.Contains(out, "done") {
		t.Fatalf("exit %d, output %q", st.Code, out)
	}
	if a, b, c := <-got, <-got, <-got; a != "firstsecond" || b != "" || c != "" {
		t.Errorf("the server received %q, %q, %q; want firstsecond, nothing (refused), nothing", a, b, c)
	}
	if len(h.got) != 2 || string(h.got[0].Data) != "first" || h.got[0].Call != "write" || h.got[0].Addr.String() != addr ||
		!strings.Contains(string(h.got[1].Data), "mining.subscribe") {
		t.Errorf("payloads %+v, want first and the subscribe", h.got)
	}
	if len(h.outcomes) != 1 || h.outcomes[0].o != Refused {
		t.Errorf("outcomes %+v, want one refusal", h.outcomes)
	}
	// Three connections: two sent within a few calls, the third was
	// followed for FollowCalls calls (an entry and an exit stop each).
	if max := int64(3 * (2*FollowCalls + 2)); st.Stops.Followed == 0 || st.Stops.Followed > max {
		t.Errorf("%d followed stops, want 1..%d", st.Stops.Followed, max)
	}
	t.Logf("stops %+v", st.Stops)
	// A handler that does not ask for payloads costs no followed stop.
	addr, got = sink(t, 1)
	host, port, _ = net.SplitHostPort(addr)
	st, _ = runBash(t, ModePtrace, &recorder{}, fmt.Sprintf("exec 3<>/dev/tcp/%s/%s; echo -n x >&3", host, port))
	if <-got != "x" || st.Stops.Followed != 0 {
		t.Errorf("without a PayloadHandler: %d followed stops", st.Stops.Followed)
	}
}

// TestFollowDoneAfter: a program's connections to one destination are
// inspected until doneAfter of them were allowed; refused ones do not count.
func TestFollowDoneAfter(t *testing.T) {
	for _, deny := range []string{"", "x"} {
		addr, got := sink(t, 6)
		host, port, _ := net.SplitHostPort(addr)
		h := &payloadRecorder{deny: deny}
		st, out := runBash(t, ModePtrace, h, fmt.Sprintf(`for i in 1 2 3 4 5 6; do exec 3<>/dev/tcp/%s/%s; echo -n x >&3; exec 3>&-; done; echo ran`, host, port))
		for range 6 {
			<-got
		}
		want := doneAfter
		if deny != "" {
			want = 6
		}
		if !strings.Contains(out, "ran") || len(h.got) != want {
			t.Errorf("deny %q: %d payloads inspected, want %d; output %q, stops %+v", deny, len(h.got), want, out, st.Stops)
		}
	}
}
