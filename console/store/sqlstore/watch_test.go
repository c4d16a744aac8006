package sqlstore

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// The watcher's answer to a waiter at revision rev is a revision greater than
// rev, never a different but older one: a notification that lags behind the
// database (the waiter read revision 5, the watcher still knows 4) must not
// wake the waiter with 4. This is the "!=" (old SQLite store) versus ">" (old
// PostgreSQL store) drift; ">" is right, and WaitPolicy's first read from the
// database answers a caller that is ahead of it.
func TestRevisionsWaitForGreater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRevisions()
		defer r.close()
		r.set(4) // the watcher lags: the database is at 5
		got := make(chan int64, 1)
		go func() {
			rev, err := r.wait(context.Background(), 5)
			if err != nil {
				t.Errorf("wait: %v", err)
			}
			got <- rev
		}()
		synctest.Wait()
		select {
		case rev := <-got:
			t.Fatalf("a waiter at 5 woke with %d while the watcher knew only 4", rev)
		default:
		}
		r.set(5) // the lagging notification arrives: still not newer than 5
		r.set(3) // an out-of-order one is ignored
		synctest.Wait()
		select {
		case rev := <-got:
			t.Fatalf("a waiter at 5 woke with %d", rev)
		default:
		}
		if n := r.count(); n != 1 {
			t.Fatalf("count = %d waiters, want 1", n)
		}
		r.set(6)
		if rev := <-got; rev != 6 {
			t.Fatalf("woke with %d, want 6", rev)
		}
		synctest.Wait()
		if n := r.count(); n != 0 {
			t.Fatalf("count = %d waiters after the wake-up, want 0", n)
		}
	})
}

func TestRevisionsWaitEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRevisions()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		rev, err := r.wait(ctx, 2)
		if err != context.DeadlineExceeded || rev != 2 || time.Since(start) != time.Minute {
			t.Fatalf("wait until the deadline = %d, %v after %v", rev, err, time.Since(start))
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.wait(context.Background(), 2)
			done <- err
		}()
		synctest.Wait()
		r.close()
		if err := <-done; err != context.Canceled {
			t.Fatalf("wait after close = %v, want context.Canceled", err)
		}
	})
}
