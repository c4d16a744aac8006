package socket

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// DefaultPath is where launchers find the sidecar, in the shared volume.
const DefaultPath = "/var/lib/taskguard/defender.sock"

// maxFrame bounds one frame; longer lines are an error, never a hang.
const maxFrame = 8 << 20

// Frame is one line on the socket.
type Frame struct {
	// Hello is the launcher's first frame: who it protects.
	Hello *policy.Identity `json:"hello,omitempty"`
	// Policy is the sidecar's current policy (sidecar → launcher).
	Policy *policy.Policy `json:"policy,omitempty"`
	// Audit is one record (launcher → sidecar).
	Audit *api.Audit `json:"audit,omitempty"`
	// Inventory is the container's inventory (launcher → sidecar).
	Inventory *api.Inventory `json:"inventory,omitempty"`
	// Seq numbers a launcher's audit and inventory frames (from 1); the
	// sidecar answers each numbered frame it has taken with Ack, and the
	// launcher keeps a frame until it is acknowledged, so a frame written
	// just before a sidecar dies is sent again to the next one (the
	// console stores an audit once per ID).
	Seq uint64 `json:"seq,omitempty"`
	Ack uint64 `json:"ack,omitempty"`
}

// DefaultMaxConns is how many links a Server serves at once unless told
// otherwise. A task holds at most 10 containers (an ECS quota) and each
// app container one launcher with one link (a launcher that links again
// has closed its old link first), so a real task needs 10 links, a few
// more for a moment while the sidecar sees old links end. The socket is
// open to every process of the task: each link costs a 64 KiB buffer, two
// goroutines and a descriptor, and up to maxFrame while a long frame is
// read, so the cap bounds that (64 × 8 MiB at worst) rather than the
// sidecar's descriptor limit.
const DefaultMaxConns = 64

// DefaultMaxConnsPerGroup is how many links one peer group (a container:
// see Server.MaxConnsPerGroup) is served at once unless told otherwise. A
// launcher holds one link, two for a moment when it links again.
const DefaultMaxConnsPerGroup = 16

// Links kept for groups that hold fewer than linkFloor links: a group
// holding linkFloor links or more is served only while fewer than
// MaxConns - reserve links are open, where reserve is maxGroups *
// linkFloor (at most MaxConns - MaxConnsPerGroup). With up to maxGroups
// groups (an ECS task holds at most 10 containers) every group is
// served linkFloor links whatever the others hold.
const (
	linkFloor = 2
	maxGroups = 10
)

// maxBursts bounds the groups whose burst of refused links is tracked
// (each is logged once); refusals of groups beyond are logged together.
const maxBursts = 64

// Server is the sidecar's end. Policies given to SetPolicy reach every
// connected launcher; audits from launchers go to the Audits func.
type Server struct {
	// MaxConns bounds the links served at once (0: DefaultMaxConns). A
	// link made while that many are open is closed at once, unread (the
	// launcher dials again, with backoff); links already open are never
	// dropped for it. Set it before Serve.
	MaxConns int
	// MaxConnsPerGroup bounds the links one peer group is served at once
	// (0: DefaultMaxConnsPerGroup), refused as beyond MaxConns. A group
	// is the container of the process that connected: its cgroup, read
	// at accept from the peer's credentials (SO_PEERCRED and
	// /proc/PID/cgroup), else its PID namespace, else its user ID. So a
	// process of one container that opens and holds links gets its
	// group's share, and the launcher of another container (restarted
	// meanwhile) is still served. Set it before Serve.
	MaxConnsPerGroup int

	mu      sync.Mutex
	current *policy.Policy
	conns   map[*serverConn]bool
	audits  func(api.Audit)
	invs    func(api.Inventory)
	log     *slog.Logger
	refused atomic.Int64
}

type serverConn struct {
	mu sync.Mutex
	c  net.Conn
}

func (sc *serverConn) send(f Frame) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	_ = sc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = sc.c.Write(append(b, '\n'))
	return err
}

// NewServer returns a server handing audits to onAudit (called from the
// connection goroutines; it must be safe for concurrent use).
func NewServer(onAudit func(api.Audit), log *slog.Logger) *Server {
	return &Server{conns: map[*serverConn]bool{}, audits: onAudit, log: log}
}

// OnInventory sets the func that receives inventories from launchers
// (called from the connection goroutines); without one they are dropped.
// Call it before Serve.
func (s *Server) OnInventory(fn func(api.Inventory)) {
	s.mu.Lock()
	s.invs = fn
	s.mu.Unlock()
}

// SetPolicy makes p current and pushes it to every launcher.
func (s *Server) SetPolicy(p *policy.Policy) {
	s.mu.Lock()
	s.current = p
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if err := c.send(Frame{Policy: p}); err != nil {
			s.log.Warn("push policy to launcher", "err", err)
		}
	}
}

// Listen creates the socket at path (replacing a stale one), world-writable
// so app containers running as any user can connect.
func Listen(path string) (net.Listener, error) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return l, nil
}

// Serve accepts launchers until ctx ends; it returns once every
// connection it accepted is closed. At most MaxConns links are served at
// once, and at most MaxConnsPerGroup from one peer group: one made beyond
// is closed at once. The first link of a group refused logs a warning
// naming the group; the next link of that group served ends its burst of
// refusals and logs how many there were.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	lim := s.limits()
	var (
		mu     sync.Mutex
		open   = map[string]int{} // links served per group
		total  int
		bursts = map[string]int64{} // links refused per group since its last one served
		others int64                // refused links of groups beyond maxBursts
	)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept launcher: %w", err)
		}
		g := peerGroup(c)
		mu.Lock()
		held, all := open[g], total
		why := lim.refuse(held, all)
		if why != "" {
			s.refused.Add(1) // before the launcher can see the close
			mu.Unlock()
			c.Close()
			switch n, ok := bursts[g]; {
			case ok || len(bursts) < maxBursts:
				if n == 0 {
					s.log.Warn("refusing launcher links: "+why+"; more are refused until one closes", "group", logGroup(g),
						"group_links", held, "share", lim.share, "links", all, "cap", lim.total)
				}
				bursts[g] = n + 1
			default:
				if others == 0 {
					s.log.Warn("refusing launcher links of more groups than are named", "groups", len(bursts))
				}
				others++
			}
			continue
		}
		open[g]++
		total++
		mu.Unlock()
		if n := bursts[g]; n > 0 {
			s.log.Info("serving launcher links again", "group", logGroup(g), "refused", n)
			delete(bursts, g)
		}
		if others > 0 && len(bursts) < maxBursts {
			s.log.Info("serving launcher links again", "refused_in_unnamed_groups", others)
			others = 0
		}
		wg.Go(func() {
			defer func() {
				mu.Lock()
				if open[g]--; open[g] == 0 {
					delete(open, g)
				}
				total--
				mu.Unlock()
			}()
			s.handle(ctx, c)
		})
	}
}

// linkLimits are a Server's bounds of links, resolved.
type linkLimits struct {
	total, share, reserve int
}

func (s *Server) limits() linkLimits {
	l := linkLimits{total: s.MaxConns, share: s.MaxConnsPerGroup}
	if l.total <= 0 {
		l.total = DefaultMaxConns
	}
	if l.share <= 0 {
		l.share = DefaultMaxConnsPerGroup
	}
	l.share = min(l.share, l.total)
	l.reserve = max(0, min(maxGroups*linkFloor, l.total-l.share))
	return l
}

// refuse says why a link of a group holding n links is refused while total
// links are open, or "" when it is served.
func (l linkLimits) refuse(n, total int) string {
	switch {
	case n >= l.share:
		return "this group holds its share of links"
	case total >= l.total:
		return "as many as the cap are open"
	case n >= linkFloor && total >= l.total-l.reserve:
		return "the links left are kept for groups that hold fewer than 2"
	}
	return ""
}

// logGroup bounds a group's name in the log.
func logGroup(g string) string {
	if len(g) > 256 {
		return g[:256] + "…"
	}
	return g
}

// Refused is how many links were refused because MaxConns were open, or
// MaxConnsPerGroup of the link's group.
func (s *Server) Refused() int64 { return s.refused.Load() }

func (s *Server) handle(ctx context.Context, c net.Conn) {
	sc := &serverConn{c: c}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	s.mu.Lock()
	s.conns[sc] = true
	cur := s.current
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
	}()
	// With no policy yet the launcher waits (bounded) for the first one.
	if cur != nil {
		if err := sc.send(Frame{Policy: cur}); err != nil {
			return
		}
	}
	var lastSeq atomic.Uint64
	ackNow := make(chan struct{}, 1)
	acksDone := make(chan struct{})
	defer func() { <-acksDone }()
	defer close(ackNow)
	go func() {
		defer close(acksDone)
		for range ackNow {
			if err := sc.send(Frame{Ack: lastSeq.Load()}); err != nil {
				c.Close()
				for range ackNow { // drain until the reader ends
				}
				return
			}
		}
	}()
	fr := newFrameReader(c)
	for {
		line, err := fr.next()
		if err != nil {
			if errors.Is(err, errFrameTooLong) {
				s.log.Warn("bad frame from launcher", "err", err)
			}
			return
		}
		var f Frame
		if err := json.Unmarshal(line, &f); err != nil {
			s.log.Warn("bad frame from launcher", "err", err)
			return
		}
		if f.Hello != nil {
			s.log.Info("launcher connected", "container", f.Hello.Container, "task", f.Hello.TaskFamily)
		}
		if f.Audit != nil {
			s.audits(*f.Audit)
		}
		if f.Inventory != nil {
			s.mu.Lock()
			fn := s.invs
			s.mu.Unlock()
			if fn != nil {
				fn(*f.Inventory)
			}
		}
		if f.Seq != 0 {
			// Acknowledged by another goroutine, cumulatively: this loop
			// never waits on a launcher that is busy writing.
			lastSeq.Store(f.Seq)
			select {
			case ackNow <- struct{}{}:
			default:
			}
		}
	}
}

// frameBuffer is what a link's reader keeps between frames.
const frameBuffer = 64 << 10

// errFrameTooLong is a line longer than maxFrame.
var errFrameTooLong = fmt.Errorf("frame longer than %d bytes", maxFrame)

// frameReader reads the lines of a link. It keeps frameBuffer bytes: a
// longer frame (an inventory, a large policy) is gathered in a buffer of
// its own, dropped once the frame is handled, so a link that once carried
// a large frame does not hold a buffer of that size for the rest of its
// life (a bufio.Scanner's only grows, up to maxFrame per link).
type frameReader struct {
	r *bufio.Reader
}

func newFrameReader(c net.Conn) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(c, frameBuffer)}
}

// next returns the next line without its newline (and a final line without
// one at the end of the link); it is valid until the next call.
func (fr *frameReader) next() ([]byte, error) {
	line, err := fr.r.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	var big []byte
	for err == bufio.ErrBufferFull {
		if len(big)+len(line) > maxFrame {
			return nil, errFrameTooLong
		}
		big = append(big, line...)
		line, err = fr.r.ReadSlice('\n')
	}
	if len(big)+len(line) > maxFrame {
		return nil, errFrameTooLong
	}
	big = append(big, line...)
	switch {
	case err == nil:
		return big[:len(big)-1], nil
	case err == io.EOF && len(big) > 0:
		return big, nil
	}
	return nil, err
}

// Bounds of what a client holds while its sidecar is away.
const (
	maxHeldFrames = 4096
	maxHeldBytes  = 16 << 20
)

// Redial backoff after the sidecar went away.
const (
	redialFirst = 50 * time.Millisecond
	redialMax   = 2 * time.Second
)

// Client is the launcher's end. When the sidecar goes away (restart,
// crash) the client dials it again and holds what it is given to send
// meanwhile: up to maxHeldFrames frames and maxHeldBytes bytes, in order.
// Frames beyond are dropped and counted; the count reaches the sidecar as
// an audit once it is back.
type Client struct {
	path string
	id   policy.Identity

	mu      sync.Mutex
	c       net.Conn    // nil while the sidecar is away
	held    []heldFrame // numbered frames not yet acknowledged, in order
	heldLen int
	seq     uint64
	dropped int64
	closed  bool
	// reconnects counts the links made after the first one.
	reconnects int
	// acked is closed and replaced whenever an acknowledgement arrives.
	acked chan struct{}
}

// closeWait bounds how long Close waits for the acknowledgement of what
// was sent last.
const closeWait = 2 * time.Second

// ErrNoSidecar means no sidecar listens at the socket path.
var ErrNoSidecar = errors.New("no sidecar socket")

// Dial connects to the sidecar and says hello.
func Dial(path string, id policy.Identity) (*Client, error) {
	cl := &Client{path: path, id: id, acked: make(chan struct{})}
	c, err := cl.dial()
	if err != nil {
		return nil, err
	}
	cl.c = c
	return cl, nil
}

// dial opens a link and says hello on it.
func (cl *Client) dial() (net.Conn, error) {
	c, err := net.DialTimeout("unix", cl.path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNoSidecar, cl.path, err)
	}
	b, err := json.Marshal(Frame{Hello: &cl.id})
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := write(c, b); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func write(c net.Conn, line []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("send to sidecar: %w", err)
	}
	return nil
}

// breakLocked drops the current link (cl.mu held); the reader, whose read
// then fails, makes a new one.
func (cl *Client) breakLocked() {
	if cl.c == nil {
		return
	}
	cl.c.Close()
	cl.c = nil
}

type heldFrame struct {
	seq  uint64
	line []byte
}

// holdLocked numbers f and keeps it until it is acknowledged (cl.mu held).
// Beyond the bounds it is dropped and counted; force ignores the bounds.
func (cl *Client) holdLocked(f Frame, force bool) ([]byte, error) {
	cl.seq++
	f.Seq = cl.seq
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > maxFrame {
		// The sidecar would drop the whole link on an oversize line.
		return nil, fmt.Errorf("send to sidecar: frame of %d bytes exceeds the %d byte limit", len(b)+1, maxFrame)
	}
	if !force && (len(cl.held) >= maxHeldFrames || cl.heldLen+len(b) > maxHeldBytes) {
		cl.dropped++
		return nil, nil
	}
	cl.held = append(cl.held, heldFrame{cl.seq, b})
	cl.heldLen += len(b)
	return b, nil
}

// ackLocked forgets the frames up to seq (cl.mu held).
func (cl *Client) ackLocked(seq uint64) {
	i := 0
	for i < len(cl.held) && cl.held[i].seq <= seq {
		cl.heldLen -= len(cl.held[i].line)
		i++
	}
	cl.held = cl.held[i:]
	if len(cl.held) == 0 {
		cl.held = nil
	}
	close(cl.acked)
	cl.acked = make(chan struct{})
}

func (cl *Client) send(f Frame) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return net.ErrClosed
	}
	b, err := cl.holdLocked(f, false)
	if err != nil || b == nil || cl.c == nil {
		return err // held (or dropped and counted) while the sidecar is away
	}
	if err := write(cl.c, b); err != nil {
		// The sidecar went away: the frame is held for the next link.
		cl.breakLocked()
	}
	return nil
}

// Send passes audits to the sidecar, or holds them while it is away.
func (cl *Client) Send(_ context.Context, audits []api.Audit) error {
	for i := range audits {
		if err := cl.send(Frame{Audit: &audits[i]}); err != nil {
			return err
		}
	}
	return nil
}

// SendInventory passes the container's inventory to the sidecar.
func (cl *Client) SendInventory(_ context.Context, inv api.Inventory) error {
	return cl.send(Frame{Inventory: &inv})
}

// Stats reports how many frames the client holds (not yet acknowledged by
// a sidecar), how many it dropped since the last report went out, and how
// many times it linked again after the first link.
func (cl *Client) Stats() (held int, dropped int64, reconnects int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.held), cl.dropped, cl.reconnects
}

// reconnect dials until a link is made (then delivers what is held, in
// order, and reports drops) or the client is closed.
func (cl *Client) reconnect() (net.Conn, error) {
	wait := redialFirst
	for {
		cl.mu.Lock()
		closed := cl.closed
		cl.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		c, err := cl.dial()
		if err == nil {
			cl.mu.Lock()
			if cl.closed {
				cl.mu.Unlock()
				c.Close()
				return nil, net.ErrClosed
			}
			err = cl.flushLocked(c)
			if err == nil {
				cl.c = c
				cl.reconnects++
				cl.mu.Unlock()
				return c, nil
			}
			cl.mu.Unlock()
			c.Close()
		}
		time.Sleep(wait)
		wait = min(2*wait, redialMax)
	}
}

// flushLocked sends the drop report and every frame not yet acknowledged
// on c (cl.mu held).
func (cl *Client) flushLocked(c net.Conn) error {
	if cl.dropped > 0 {
		a := api.Audit{ID: newID(), Time: time.Now().UTC(), Kind: api.AuditDefender, Effect: policy.EffectAlert, Severity: "high",
			Container: cl.id.Container, TaskFamily: cl.id.TaskFamily, Image: cl.id.Image,
			Message: fmt.Sprintf("Launcher buffer overflow: %d records were dropped while the sidecar was away", cl.dropped)}
		if _, err := cl.holdLocked(Frame{Audit: &a}, true); err != nil {
			return err
		}
		cl.dropped = 0
	}
	for _, h := range cl.held {
		if err := write(c, h.line); err != nil {
			return err
		}
	}
	return nil
}

// Policies reads policy frames until the client is closed, calling onPolicy
// for each (on the caller's goroutine). When the sidecar goes away it dials
// it again; the sidecar sends its current policy on each new link. It
// returns net.ErrClosed after Close.
func (cl *Client) Policies(onPolicy func(*policy.Policy)) error {
	cl.mu.Lock()
	c := cl.c
	cl.mu.Unlock()
	for {
		if c != nil {
			cl.read(c, onPolicy)
			cl.mu.Lock()
			if cl.c == c {
				cl.breakLocked()
			}
			cl.mu.Unlock()
		}
		var err error
		if c, err = cl.reconnect(); err != nil {
			return err
		}
	}
}

// read delivers the policies read on c until the link ends or a frame does
// not parse (then the link is dropped and made again).
func (cl *Client) read(c net.Conn, onPolicy func(*policy.Policy)) {
	fr := newFrameReader(c)
	for {
		line, err := fr.next()
		if err != nil {
			return
		}
		var f Frame
		if err := json.Unmarshal(line, &f); err != nil {
			return
		}
		if f.Ack != 0 {
			cl.mu.Lock()
			cl.ackLocked(f.Ack)
			cl.mu.Unlock()
		}
		if f.Policy != nil {
			onPolicy(f.Policy)
		}
	}
}

// Close ends the link for good, after waiting (at most closeWait) for the
// acknowledgement of frames sent on a live link. Frames no sidecar
// acknowledged may be lost; the error says how many.
func (cl *Client) Close() error {
	// What was just sent on a live link is acknowledged within moments:
	// wait for that (bounded), so an exit right after a send loses nothing.
	timeout := time.NewTimer(closeWait)
	defer timeout.Stop()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for cl.c != nil && len(cl.held) > 0 && !cl.closed {
		ch := cl.acked
		cl.mu.Unlock()
		select {
		case <-ch:
			cl.mu.Lock()
			continue
		case <-timeout.C:
		}
		cl.mu.Lock()
		break
	}
	if cl.closed {
		return nil
	}
	cl.closed = true
	cl.breakLocked()
	if n := len(cl.held); n > 0 || cl.dropped > 0 {
		return fmt.Errorf("sidecar link at close: %d held records (not acknowledged) and %d dropped ones may not have been delivered", n, cl.dropped)
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
