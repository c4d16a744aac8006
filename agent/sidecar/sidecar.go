package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Options configure the sidecar.
type Options struct {
	// SocketPath is where launchers connect (socket.DefaultPath).
	SocketPath string
	// StateDir holds the last good policy and the audit spool (/var/lib/taskguard/state).
	StateDir string
	// Console, when set, is the policy source and the audit destination.
	Console *Console
	// PolicyWait is the long-poll duration asked of the console.
	PolicyWait time.Duration
	// PolicyFile, without Console, is the policy (standalone).
	PolicyFile string
	// Audits, without Console, receives the audits (standalone: JSON lines).
	Audits audit.Sink
	// TaskFamily is the task's family, which WAF rules are matched against.
	TaskFamily string
	// WAFAddr is the address WAF proxies listen on; empty means every
	// address of the task (the external ports must be reachable).
	WAFAddr string
	// Shipper, when set, adjusts the audit shipper before it starts (its
	// batching window, backoff; tests).
	Shipper func(*Shipper)
	// Ready, when set, is closed once the socket listens.
	Ready chan<- struct{}
	Log   *slog.Logger
}

// Run serves launchers until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Console == nil && o.PolicyFile == "" {
		return errors.New("sidecar: give a console address or a policy file")
	}
	if o.PolicyWait == 0 {
		o.PolicyWait = 30 * time.Second
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return fmt.Errorf("sidecar state: %w", err)
	}
	sink := o.Audits
	if o.Console != nil {
		sink = o.Console
	}
	if sink == nil {
		return errors.New("sidecar: no audit destination")
	}
	ship := NewShipper(sink, filepath.Join(o.StateDir, "spool"), o.Log.With("component", "audits"))
	if o.Shipper != nil {
		o.Shipper(ship)
	}
	srv := socket.NewServer(ship.Add, o.Log.With("component", "socket"))
	g, ctx := errgroup.WithContext(ctx)
	firewalls := newWAFs(ctx, o.TaskFamily, o.WAFAddr, ship.Add, o.Log.With("component", "waf"))
	defer firewalls.wait()
	apply := func(p *policy.Policy) {
		srv.SetPolicy(p)
		firewalls.apply(p)
	}
	if o.PolicyFile != "" && o.Console == nil {
		p, err := readPolicy(o.PolicyFile)
		if err != nil {
			return err
		}
		apply(p)
	} else if p, err := readPolicy(lastGoodPath(o.StateDir)); err == nil {
		o.Log.Info("serving the last good policy until the console answers", "revision", p.Revision)
		apply(p)
	}
	l, err := socket.Listen(o.SocketPath)
	if err != nil {
		return err
	}
	if o.Ready != nil {
		close(o.Ready)
	}
	if o.Console != nil {
		fw := newInventoryForwarder(o.Console.SendInventory, o.TaskFamily, o.Log.With("component", "inventory"))
		srv.OnInventory(fw.add)
		g.Go(func() error { return fw.run(ctx) })
	} else {
		srv.OnInventory(func(inv api.Inventory) {
			o.Log.Info("inventory received; no console to send it to", "container", inv.Container, "packages", len(inv.Packages), "findings", len(inv.Compliance))
		})
	}
	g.Go(func() error { return srv.Serve(ctx, l) })
	// The shipper outlives the WAF proxies: the audits they make while
	// they stop (requests finishing, the rate-limit and bot counts of the
	// last window) are shipped by its final delivery, not left in the
	// spool.
	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	defer stopShip()
	shipped := make(chan error, 1)
	go func() { shipped <- ship.Run(shipCtx) }()
	g.Go(func() error {
		select {
		case err := <-shipped: // ended early: the sidecar stops
			shipped <- err
			return err
		case <-ctx.Done():
			return nil
		}
	})
	if o.Console != nil {
		g.Go(func() error {
			pollPolicy(ctx, o.Console, o.PolicyWait, o.StateDir, apply, o.Log.With("component", "policy"))
			return nil
		})
	}
	err = g.Wait()
	firewalls.wait()
	stopShip()
	if shipErr := <-shipped; err == nil {
		err = shipErr
	}
	return err
}

// minPoll is the shortest time between two policy requests answered 304.
const minPoll = 5 * time.Second

func lastGoodPath(stateDir string) string { return filepath.Join(stateDir, "policy.json") }

func readPolicy(path string) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	var p policy.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return &p, nil
}

// pollPolicy long-polls the console; every new valid policy is stored as the
// last good one and handed to apply. Failures back off up to a minute.
func pollPolicy(ctx context.Context, c *Console, wait time.Duration, stateDir string, apply func(*policy.Policy), log *slog.Logger) {
	etag := ""
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		started := time.Now()
		p, tag, err := c.Policy(ctx, etag, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, time.Second), time.Minute)
			log.Warn("policy fetch failed; keeping the current policy", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		etag = tag
		if p == nil {
			// 304. A console that does not hold the request must not be
			// polled in a tight loop.
			if rest := min(wait, minPoll) - time.Since(started); rest > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(rest):
				}
			}
			continue
		}
		if b, err := json.Marshal(p); err == nil {
			tmp := lastGoodPath(stateDir) + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err == nil {
				_ = os.Rename(tmp, lastGoodPath(stateDir))
			}
		}
		log.Info("policy updated", "revision", p.Revision)
		apply(p)
		if etag == "" {
			// A console without ETags: do not spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}
