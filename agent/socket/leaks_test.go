package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// TestReconnectsLeaveNothing: a launcher's client outlives many sidecar
// restarts. 300 times a new sidecar takes the socket path and the old one
// stops; the client links to the new one (its policy arrives) and an audit
// sent after goes through and is acknowledged. Goroutines, descriptors and
// held frames stay where they were after the first link: no link, reader,
// acknowledger or server connection is left behind.
func TestReconnectsLeaveNothing(t *testing.T) {
	const restarts = 300
	path := filepath.Join(t.TempDir(), "d.sock")
	audits := make(chan api.Audit, 16)
	type sidecar struct {
		srv  *Server
		stop func()
	}
	start := func(rev int64) sidecar {
		srv := NewServer(func(a api.Audit) { audits <- a }, slog.New(slog.DiscardHandler))
		srv.SetPolicy(&policy.Policy{Revision: rev})
		l, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		// The old sidecar's stop must not remove the new one's socket file.
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, l) }()
		return sidecar{srv, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}}
	}
	cur := start(1)
	cl, err := Dial(path, policy.Identity{Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	revs := make(chan int64, 16)
	policiesDone := make(chan error, 1)
	go func() { policiesDone <- cl.Policies(func(p *policy.Policy) { revs <- p.Revision }) }()
	waitRev := func(want int64) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case r := <-revs:
				if r == want {
					return
				}
			case <-timeout:
				t.Fatalf("the client did not link to sidecar %d", want)
			}
		}
	}
	roundTrip := func(i int) {
		t.Helper()
		msg := fmt.Sprintf("audit-%d", i)
		if err := cl.Send(context.Background(), []api.Audit{{ID: msg, Message: msg}}); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(20 * time.Second)
		for {
			select {
			case a := <-audits:
				if a.Message == msg {
					return
				}
			case <-timeout:
				t.Fatalf("%s did not reach the sidecar", msg)
			}
		}
	}
	waitRev(1)
	roundTrip(0)
	goroutines, fds := runtime.NumGoroutine(), testenv.OpenFDs(t)
	for i := 2; i <= restarts+1; i++ {
		next := start(int64(i))
		cur.stop()
		cur = next
		waitRev(int64(i))
		roundTrip(i)
	}
	// The last acknowledgement may still be on its way.
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		if held, _, _ := cl.Stats(); held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("frames still held after every audit arrived")
		}
	}
	_, dropped, reconnects := cl.Stats()
	gAfter, fAfter := runtime.NumGoroutine(), testenv.OpenFDs(t)
	t.Logf("%d reconnects: goroutines %d -> %d, descriptors %d -> %d", reconnects, goroutines, gAfter, fds, fAfter)
	if reconnects < restarts || dropped != 0 {
		t.Errorf("reconnects %d, dropped %d; want at least %d and 0", reconnects, dropped, restarts)
	}
	// A few may be on their way out (a stopped server's context watcher).
	if gAfter-goroutines > 10 {
		t.Errorf("%d more goroutines after %d reconnects", gAfter-goroutines, restarts)
	}
	if fAfter-fds > 5 {
		t.Errorf("%d more open descriptors after %d reconnects", fAfter-fds, restarts)
	}
	if err := cl.Close(); err != nil {
		t.Error(err)
	}
	cur.stop()
	if err := <-policiesDone; err == nil {
		t.Error("Policies returned no error after Close")
	}
}

// TestFrameReader: lines of any size up to maxFrame (newline included)
// come back whole; a longer one is an error, never a hang.
func TestFrameReader(t *testing.T) {
	big := strings.Repeat("x", 3*frameBuffer+17)
	limit := strings.Repeat("y", maxFrame-1)
	tests := []struct {
		name string
		in   string
		want []string
		err  error
	}{
		{"small lines", "a\nbc\n", []string{"a", "bc"}, io.EOF},
		{"longer than the buffer", "a\n" + big + "\nb\n", []string{"a", big, "b"}, io.EOF},
		{"maxFrame with its newline", limit + "\nz\n", []string{limit, "z"}, io.EOF},
		{"one byte more", limit + "y\n", nil, errFrameTooLong},
		{"last line without newline", "a\n" + big, []string{"a", big}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, w := net.Pipe()
			defer c.Close()
			go func() { _, _ = io.WriteString(w, tt.in); w.Close() }()
			fr := newFrameReader(c)
			var got []string
			var err error
			for {
				var line []byte
				if line, err = fr.next(); err != nil {
					break
				}
				got = append(got, string(line))
			}
			if !slices.Equal(got, tt.want) || !errors.Is(err, tt.err) {
				t.Errorf("got %d lines (%v), want %d (%v)", len(got), err, len(tt.want), tt.err)
			}
		})
	}
}

// TestLargeFrameNotKept: a link that carried a large frame once (an
// inventory of a few MiB) does not keep a buffer of its size for the rest
// of its life. 16 launchers each send a 4 MiB inventory and stay linked:
// the sidecar's live heap grows by less than a MiB a link (a
// bufio.Scanner kept 4-8 MiB each: 64-128 MiB).
func TestLargeFrameNotKept(t *testing.T) {
	const links = 16
	ts := serveAt(t, filepath.Join(t.TempDir(), "d.sock"))
	got := make(chan struct{}, links)
	ts.srv.OnInventory(func(api.Inventory) { got <- struct{}{} })
	frame, err := json.Marshal(Frame{Inventory: &api.Inventory{Container: "app", Hash: "sha256:1", Image: strings.Repeat("x", 4<<20)}})
	if err != nil {
		t.Fatal(err)
	}
	frame = append(frame, '\n')
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // and what sync.Pools dropped at the first
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for range links {
		c, err := net.Dial("unix", ts.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	for range links {
		<-got
	}
	grown := int64(heap()) - int64(before)
	runtime.KeepAlive(frame)
	t.Logf("%d links after a 4 MiB frame each: live heap %+.1f MiB", links, float64(grown)/(1<<20))
	if grown > links<<20 {
		t.Errorf("the live heap grew by %.1f MiB for %d idle links that each carried one 4 MiB frame; want under %d MiB", float64(grown)/(1<<20), links, links)
	}
}

// refusals keeps the warnings about refused links logged through it, each
// with its attributes.
type refusals struct {
	slog.Handler
	mu    sync.Mutex
	warns []string
}

func (h *refusals) Enabled(context.Context, slog.Level) bool { return true }

func (h *refusals) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && strings.Contains(r.Message, "refusing") {
		line := r.Message
		r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
		h.mu.Lock()
		h.warns = append(h.warns, line)
		h.mu.Unlock()
	}
	return nil
}

// serveWith runs srv, with policy revision 1, on a socket at path until
// the test ends.
func serveWith(t *testing.T, srv *Server, path string) {
	t.Helper()
	srv.SetPolicy(&policy.Policy{Revision: 1})
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

func (h *refusals) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *refusals) WithGroup(string) slog.Handler      { return h }

// TestLinksCapped: the socket is open to every process of the task, and
// each link costs the sidecar a descriptor, a 64 KiB buffer and two
// goroutines. A process opens MaxConns+extra links and keeps them open:
// MaxConns are served (each is sent the policy), the extra ones are
// closed at once, with one warning for the burst; the sidecar's
// goroutines and descriptors grow by what MaxConns links hold, not more.
// Once some links close, a real launcher links (refused at first or not,
// it dials again), its audit arrives, and the links that stayed open all
// the while still get the next policy.
func TestLinksCapped(t *testing.T) {
	const limit, extra = 32, 48
	path := filepath.Join(t.TempDir(), "d.sock")
	audits := make(chan api.Audit, 16)
	log := &refusals{}
	srv := NewServer(func(a api.Audit) { audits <- a }, slog.New(log))
	srv.MaxConns, srv.MaxConnsPerGroup = limit, limit
	serveWith(t, srv, path)
	goroutines, fds := runtime.NumGoroutine(), testenv.OpenFDs(t)
	// readRevision reads a link's next policy frame: its revision, or 0
	// when the sidecar closed the link.
	readRevision := func(c net.Conn) int64 {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		var f Frame
		if err := json.NewDecoder(c).Decode(&f); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the sidecar neither served nor closed a link")
			}
			return 0
		}
		if f.Policy == nil {
			t.Fatalf("first frame %+v, want the policy", f)
		}
		return f.Policy.Revision
	}
	var open []net.Conn
	refused := 0
	for range limit + extra {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if readRevision(c) == 1 {
			open = append(open, c)
		} else {
			refused++
			c.Close()
		}
	}
	gAfter, fAfter := runtime.NumGoroutine(), testenv.OpenFDs(t)
	// The test's own ends of the links served are open descriptors too.
	sidecarFDs := fAfter - fds - len(open)
	t.Logf("%d links: %d served, %d refused (Refused %d); goroutines %+d, sidecar descriptors %+d", limit+extra, len(open), refused, srv.Refused(), gAfter-goroutines, sidecarFDs)
	if len(open) != limit || refused != extra || srv.Refused() != extra {
		t.Fatalf("%d links served and %d refused (Refused %d), want %d and %d", len(open), refused, srv.Refused(), limit, extra)
	}
	if gAfter-goroutines > 2*limit+5 || sidecarFDs > limit+5 {
		t.Errorf("%d links open: %d more goroutines and %d more sidecar descriptors, want at most %d and %d", limit, gAfter-goroutines, sidecarFDs, 2*limit+5, limit+5)
	}
	// A launcher whose app starts now, while the cap is reached: its link
	// is refused, and it links once a few others close.
	freed := false
	freeSome := func() {
		if !freed {
			// Only once the launcher's link was refused.
			for deadline := time.Now().Add(20 * time.Second); srv.Refused() == extra; runtime.Gosched() {
				if time.Now().After(deadline) {
					t.Fatal("the launcher's link, made at the cap, was neither served nor refused")
				}
			}
			for _, c := range open[:4] {
				c.Close()
			}
			open, freed = open[4:], true
		}
	}
	var cl *Client
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; runtime.Gosched() {
		// A refused link may be closed before the hello is written.
		if cl, err = Dial(path, policy.Identity{Container: "app"}); err == nil {
			break
		}
		freeSome()
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	revs := make(chan int64, 4)
	go func() { _ = cl.Policies(func(p *policy.Policy) { revs <- p.Revision }) }()
	freeSome()
	select {
	case <-revs:
	case <-time.After(20 * time.Second):
		t.Fatal("the launcher got no policy after links closed")
	}
	if err := cl.Send(context.Background(), []api.Audit{{ID: "late", Message: "late launcher"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-audits:
		if a.Message != "late launcher" {
			t.Fatalf("audit %q, want the late launcher's", a.Message)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the late launcher's audit did not arrive")
	}
	if err := cl.Close(); err != nil {
		t.Error(err)
	}
	srv.SetPolicy(&policy.Policy{Revision: 2})
	for i, c := range open {
		if r := readRevision(c); r != 2 {
			t.Fatalf("link %d served before the cap was reached got revision %d, want 2: it was dropped", i, r)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.warns) != 1 {
		t.Errorf("%d warnings for one burst of refused links, want 1: %q", len(log.warns), log.warns)
	}
}
