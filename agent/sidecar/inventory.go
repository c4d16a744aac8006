package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/api"
)

// inventoryForwarder posts each container's latest inventory to the
// console, retrying failures with backoff (1 s doubling to 5 min). A newer
// inventory of a container replaces one not yet delivered; inventories are
// kept in memory only (the launcher sends a fresh one when it restarts).
type inventoryForwarder struct {
	post       func(context.Context, api.Inventory) error
	taskFamily string
	log        *slog.Logger

	mu      sync.Mutex
	pending map[string]api.Inventory
	wake    chan struct{}
}

// maxPendingInventories bounds the containers whose inventory waits for the
// console; a task definition holds at most 10 containers.
const maxPendingInventories = 64

func newInventoryForwarder(post func(context.Context, api.Inventory) error, taskFamily string, log *slog.Logger) *inventoryForwarder {
	return &inventoryForwarder{post: post, taskFamily: taskFamily, log: log, pending: map[string]api.Inventory{}, wake: make(chan struct{}, 1)}
}

// add queues inv (safe for concurrent use).
func (f *inventoryForwarder) add(inv api.Inventory) {
	if inv.TaskFamily == "" {
		inv.TaskFamily = f.taskFamily
	}
	if err := inv.Validate(); err != nil {
		f.log.Warn("dropping an invalid inventory from a launcher", "err", err)
		return
	}
	k := inv.TaskID + "/" + inv.Container
	f.mu.Lock()
	_, known := f.pending[k]
	full := !known && len(f.pending) >= maxPendingInventories
	if !full {
		f.pending[k] = inv
	}
	f.mu.Unlock()
	if full {
		// The socket is open to every process of the task: names beyond any
		// real task's containers must not grow the queue while the console
		// is away. The launcher sends a fresh inventory at its next scan.
		f.log.Warn("dropping an inventory: too many containers wait for the console", "container", inv.Container, "waiting", maxPendingInventories)
		return
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// drop removes inv from the queue unless a newer one replaced it meanwhile.
func (f *inventoryForwarder) drop(k string, inv api.Inventory) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.pending[k]; ok && cur.Hash == inv.Hash && cur.Time.Equal(inv.Time) {
		delete(f.pending, k)
	}
}

// run delivers queued inventories until ctx ends.
func (f *inventoryForwarder) run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		wait := backoff
		if wait == 0 {
			wait = time.Hour
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-f.wake:
		case <-t.C:
		}
		t.Stop()
		f.mu.Lock()
		batch := make(map[string]api.Inventory, len(f.pending))
		for k, v := range f.pending {
			batch[k] = v
		}
		f.mu.Unlock()
		failed := false
		for k, inv := range batch {
			if err := f.post(ctx, inv); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				var se *api.StatusError
				if errors.As(err, &se) && !se.Temporary() && !se.Unauthorized() {
					// The console refuses this inventory itself: sending it
					// again would be refused again. The launcher sends a
					// fresh one at its next scan.
					f.log.Error("inventory refused by the console; dropped", "container", inv.Container, "err", err)
					f.drop(k, inv)
					continue
				}
				failed = true
				f.log.Warn("inventory not delivered; will retry", "container", inv.Container, "err", err)
				continue
			}
			f.drop(k, inv)
			f.log.Info("inventory delivered", "container", inv.Container, "packages", len(inv.Packages))
		}
		if failed {
			backoff = min(max(2*backoff, time.Second), 5*time.Minute)
		} else {
			backoff = 0
		}
	}
}
