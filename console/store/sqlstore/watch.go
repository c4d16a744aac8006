package sqlstore

import (
	"context"
	"sync"
)

// revisions fans the newest known policy revision out to WaitPolicy callers.
// It is fed by the process's own saves (at once, on both engines) and by the
// engine's cross-process source: the LISTEN connection on PostgreSQL, a poll
// of the file while anyone waits on SQLite.
//
// The known revision only moves forward, and a waiter returns when it is
// greater than (not merely different from) the caller's revision: the
// notification of a revision can arrive after a caller read that revision
// from the database, and a "!=" test would then hand the caller the older,
// stale revision at once, over and over. A caller ahead of the database (it
// knows a revision the database no longer has) is answered by WaitPolicy's
// first read, which compares with "!=".
type revisions struct {
	mu      sync.Mutex
	rev     int64
	changed chan struct{} // closed when rev grows
	waiters int
	// first receives a value when the number of waiters goes from 0 to 1.
	first  chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newRevisions() *revisions {
	return &revisions{changed: make(chan struct{}), first: make(chan struct{}, 1), closed: make(chan struct{})}
}

// set publishes rev; an older or equal revision is ignored.
func (r *revisions) set(rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev {
		return
	}
	r.rev = rev
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *revisions) close() { r.once.Do(func() { close(r.closed) }) }

// count is how many callers wait.
func (r *revisions) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiters
}

// wait blocks until a revision greater than rev is known, ctx ends or the
// store closes.
func (r *revisions) wait(ctx context.Context, rev int64) (int64, error) {
	r.mu.Lock()
	r.waiters++
	if r.waiters == 1 {
		select {
		case r.first <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.waiters--
		r.mu.Unlock()
	}()
	for {
		r.mu.Lock()
		cur, ch := r.rev, r.changed
		r.mu.Unlock()
		if cur > rev {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return rev, ctx.Err()
		case <-r.closed:
			return rev, context.Canceled
		}
	}
}
