package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// TestShipperForgetsGoneBatches: the shipper counts the 5xx failures of a
// batch while later ones are stored (to set it aside after PoisonAfter);
// a counted batch that leaves the spool another way (here: set aside when
// the console then answers 400) must not stay counted. 300 such batches:
// the counts stay within what the spool holds (they kept one per batch
// for the life of the sidecar: 300 here). Rounds are driven by deliver itself, so
// no timing is involved.
func TestShipperForgetsGoneBatches(t *testing.T) {
	const rounds = 300
	cc, c := newConsole(t, &policy.Policy{})
	flaky := regexp.MustCompile(`flaky \d+`)
	var mu sync.Mutex
	seen := map[string]bool{}
	// In front of the real console: a batch holding "flaky N" fails with
	// 500 the first time and is refused (400) after that.
	via := consoleBehind(t, cc, c, func(w http.ResponseWriter, body []byte) bool {
		m := flaky.Find(body)
		if m == nil {
			return false
		}
		mu.Lock()
		again := seen[string(m)]
		seen[string(m)] = true
		mu.Unlock()
		if again {
			http.Error(w, `{"error":"bad batch"}`, http.StatusBadRequest)
		} else {
			http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		}
		return true
	})
	s := NewShipper(via, t.TempDir(), nil)
	ctx := context.Background()
	most := 0
	for i := range rounds {
		s.Add(rec(fmt.Sprintf("flaky %d", i)))
		s.spool()
		s.Add(rec(fmt.Sprintf("stored %d", i)))
		s.spool()
		// The last round's flaky batch is refused and set aside; this
		// round's fails once, and is counted when "stored" gets through.
		if err := s.deliver(ctx); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		most = max(most, len(s.failures))
	}
	if n := len(s.batches()); n != 1 {
		t.Fatalf("%d batches left in the spool, want the last flaky one", n)
	}
	// At most the batch set aside in a round (counted before) and the one
	// counted in it; the next round forgets the first.
	if most > 2 {
		t.Errorf("the shipper counted failures of %d batches at once; the spool never held more than two that failed", most)
	}
	if got := s.SetAside(); got != rounds-1 {
		t.Errorf("SetAside = %d, want %d", got, rounds-1)
	}
}

// TestInventoryQueueBounded: while the console is away the forwarder keeps
// the latest inventory of each container, and the socket is open to every
// process of the task. 1,000 inventories naming distinct containers leave
// at most maxPendingInventories waiting (it kept all 1,000); a container
// already waiting is still replaced by its newer inventory, and once the
// console is back every kept one is delivered and the queue is empty.
func TestInventoryQueueBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		away := true
		delivered := map[string]string{}
		post := func(_ context.Context, inv api.Inventory) error {
			mu.Lock()
			defer mu.Unlock()
			if away {
				return &api.StatusError{StatusCode: http.StatusServiceUnavailable}
			}
			delivered[inv.Container] = inv.Hash
			return nil
		}
		f := newInventoryForwarder(post, "shop", slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.run(ctx) }()
		inv := func(c, hash string) api.Inventory {
			return api.Inventory{TaskID: "t1", Container: c, Hash: hash, Time: time.Now().UTC()}
		}
		for i := range 1000 {
			f.add(inv(fmt.Sprintf("c%d", i), "sha256:old"))
			synctest.Wait()
		}
		f.add(inv("c0", "sha256:new"))
		f.mu.Lock()
		n := len(f.pending)
		f.mu.Unlock()
		if n > maxPendingInventories {
			t.Errorf("%d inventories wait for the console after 1,000 containers sent one; want at most %d", n, maxPendingInventories)
		}
		mu.Lock()
		away = false
		mu.Unlock()
		time.Sleep(10 * time.Minute) // the fake clock: past the longest backoff
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(delivered) != n || delivered["c0"] != "sha256:new" {
			t.Errorf("delivered %d inventories (c0: %q), want the %d kept, c0 with its newer one", len(delivered), delivered["c0"], n)
		}
		if len(f.pending) != 0 {
			t.Errorf("%d inventories still wait after delivery", len(f.pending))
		}
	})
}

// TestShipperSpoolsWhileDelivering: a delivery round may last long (a slow
// console, a large spool). Audits added meanwhile are spooled as they come,
// not kept in memory until the round ends: 5,000 audits while the console
// holds the round's request leave at most a batch in memory, and all of
// them reach the console once it answers.
func TestShipperSpoolsWhileDelivering(t *testing.T) {
	const audits = 5000
	cc, c := newConsole(t, &policy.Policy{})
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	// In front of the real console: the first request waits for release.
	via := consoleBehind(t, cc, c, func(http.ResponseWriter, []byte) bool {
		first := false
		once.Do(func() { first = true })
		if first {
			held <- struct{}{}
			<-release
		}
		return false
	})
	free := sync.OnceFunc(func() { close(release) })
	defer free() // before the proxy closes: a failed test leaves no request held
	spool := t.TempDir()
	s := NewShipper(via, spool, nil)
	s.FlushEvery = 10 * time.Millisecond
	s.Add(rec("first"))
	runShipper(t, s)
	<-held // a delivery round waits on the console
	for i := range audits {
		s.Add(rec(fmt.Sprintf("during %d", i)))
	}
	// Spooled while the round waits: every record is on disk but those of
	// the last flush window.
	inMemory := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.pending)
	}
	for deadline := time.Now().Add(15 * time.Second); inMemory() > 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d audits still in memory, not spooled, while a delivery round waits", inMemory(), audits)
		}
	}
	free()
	cc.WaitAudits(30*time.Second, func(a []api.Audit) bool {
		m := messages(a)
		for i := range audits {
			if !m[fmt.Sprintf("during %d", i)] {
				return false
			}
		}
		return m["first"]
	})
}
