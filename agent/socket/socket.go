package socket

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
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
}

// Server is the sidecar's end. Policies given to SetPolicy reach every
// connected launcher; audits from launchers go to the Audits func.
type Server struct {
	mu      sync.Mutex
	current *policy.Policy
	conns   map[*serverConn]bool
	audits  func(api.Audit)
	invs    func(api.Inventory)
	log     *slog.Logger
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

// Serve accepts launchers until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept launcher: %w", err)
		}
		go s.handle(ctx, c)
	}
}

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
	sc2 := bufio.NewScanner(c)
	sc2.Buffer(make([]byte, 64<<10), maxFrame)
	for sc2.Scan() {
		var f Frame
		if err := json.Unmarshal(sc2.Bytes(), &f); err != nil {
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
	}
}

// Client is the launcher's end.
type Client struct {
	c  net.Conn
	mu sync.Mutex
}

// ErrNoSidecar means no sidecar listens at the socket path.
var ErrNoSidecar = errors.New("no sidecar socket")

// Dial connects to the sidecar and says hello.
func Dial(path string, id policy.Identity) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNoSidecar, path, err)
	}
	cl := &Client{c: c}
	if err := cl.send(Frame{Hello: &id}); err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *Client) send(f Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if len(b)+1 > maxFrame {
		// The sidecar would drop the whole link on an oversize line.
		return fmt.Errorf("send to sidecar: frame of %d bytes exceeds the %d byte limit", len(b)+1, maxFrame)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_ = cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl.c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send to sidecar: %w", err)
	}
	return nil
}

// Send passes audits to the sidecar.
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

// Policies reads policy frames until the connection ends, calling onPolicy
// for each (on the caller's goroutine).
func (cl *Client) Policies(onPolicy func(*policy.Policy)) error {
	sc := bufio.NewScanner(cl.c)
	sc.Buffer(make([]byte, 64<<10), maxFrame)
	for sc.Scan() {
		var f Frame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return fmt.Errorf("bad frame from sidecar: %w", err)
		}
		if f.Policy != nil {
			onPolicy(f.Policy)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read from sidecar: %w", err)
	}
	return nil
}

// Close ends the connection.
func (cl *Client) Close() error { return cl.c.Close() }
