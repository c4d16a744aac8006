package sqlite

import (
	"context"
	"sync"
	"time"
)

// pollInterval is how often a waiting console reads the policy revision.
const pollInterval = 250 * time.Millisecond

// watcher wakes WaitPolicy callers when the revision in the database changes.
// One goroutine polls for all of them, and only while someone waits.
type watcher struct {
	read func(ctx context.Context) (int64, error)

	mu      sync.Mutex
	rev     int64
	known   bool
	changed chan struct{} // closed when rev changes
	waiters int
	running bool
	kick    chan struct{}
	done    chan struct{}
}

func newWatcher(read func(ctx context.Context) (int64, error)) *watcher {
	return &watcher{read: read, changed: make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// poke makes the poller read the revision now (after a local write).
func (w *watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

func (w *watcher) wait(ctx context.Context, rev int64) (int64, error) {
	w.mu.Lock()
	w.waiters++
	if !w.running {
		w.running = true
		go w.poll()
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.waiters--
		w.mu.Unlock()
	}()
	for {
		w.mu.Lock()
		cur, known, ch := w.rev, w.known, w.changed
		w.mu.Unlock()
		if known && cur != rev {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return rev, ctx.Err()
		case <-w.done:
			return rev, context.Canceled
		}
	}
}

func (w *watcher) poll() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rev, err := w.read(ctx)
		cancel()
		w.mu.Lock()
		if err == nil && (!w.known || rev != w.rev) {
			w.rev, w.known = rev, true
			close(w.changed)
			w.changed = make(chan struct{})
		}
		if w.waiters == 0 {
			w.running, w.known = false, false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		select {
		case <-t.C:
		case <-w.kick:
		case <-w.done:
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		}
	}
}
