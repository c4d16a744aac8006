package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

// burst makes n concurrent calls on db, half storing a batch of 10 audits,
// half reading a page of 50, and returns how many failed and the first
// failure.
func burst(db *DB, tag string, n int) (failed int, first error) {
	ctx := context.Background()
	var mu sync.Mutex
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			var err error
			if i%2 == 0 {
				audits := make([]api.Audit, 10)
				for j := range audits {
					audits[j] = api.Audit{ID: fmt.Sprintf("%s-%d-%d", tag, i, j), Time: time.Now(), TaskFamily: "web",
						Kind: api.AuditDNS, Effect: policy.EffectAlert, Message: "DNS resolution of a suspicious name"}
				}
				_, err = db.InsertAudits(ctx, audits, time.Now())
			} else {
				_, err = db.Audits(ctx, store.AuditQuery{Limit: 50})
			}
			if err != nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return failed, first
}

// BenchmarkSQLitePool: bursts of 500 concurrent calls (250 batches of 10
// audits stored, 250 pages of 50 read) on one SQLite store, by the bound on
// its connections. Besides the time per burst it reports the connections
// opened per burst past those kept idle (database/sql's MaxIdleClosed) and
// the calls that failed.
func BenchmarkSQLitePool(b *testing.B) {
	defer func(n int) { sqliteConns = n }(sqliteConns)
	for _, conns := range []int{0, 2, 4, 8, 16} {
		name := fmt.Sprintf("conns=%d", conns)
		if conns == 0 {
			name = "conns=unbounded"
		}
		b.Run(name, func(b *testing.B) {
			sqliteConns = conns
			db, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "taskguard.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			failed := 0
			closed := db.Stats().MaxIdleClosed
			b.ResetTimer()
			for i := range b.N {
				n, first := burst(db, fmt.Sprint(i), 500)
				if first != nil && failed == 0 {
					b.Logf("first failure: %v", first)
				}
				failed += n
			}
			b.StopTimer()
			b.ReportMetric(float64(db.Stats().MaxIdleClosed-closed)/float64(b.N), "conns-closed/burst")
			b.ReportMetric(float64(failed)/float64(b.N), "failed/burst")
		})
	}
}
