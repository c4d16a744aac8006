package console

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"github.com/taskguard/taskguard/console/store/sqlite"
)

// TestKillDuringAuditLoad: 20 defenders post audit batches to a real console
// process, which is killed with SIGKILL in the middle of the load and
// started again on the same database; the defenders retry every batch they
// did not see acknowledged (same record IDs), as the sidecar does. Every
// acknowledged record must be stored, and no record stored twice. On SQLite
// and on PostgreSQL.
func TestKillDuringAuditLoad(t *testing.T) {
	engines := []struct {
		name string
		args func(t *testing.T) []string
		open func(t *testing.T, dir string, args []string) store.Store
	}{
		{"sqlite", func(*testing.T) []string { return nil }, func(t *testing.T, dir string, _ []string) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(dir, "taskguard.db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"postgres", func(t *testing.T) []string {
			return []string{"--db", pgtest.Start(t).NewDatabase(t)}
		}, func(t *testing.T, _ string, args []string) store.Store {
			st, err := postgres.Open(context.Background(), args[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			args := e.args(t)
			runKillTest(t, dir, args, func() store.Store { return e.open(t, dir, args) })
		})
	}
}

func runKillTest(t *testing.T, dir string, args []string, open func() store.Store) {
	const (
		writers   = 20
		batches   = 25 // per writer
		perBatch  = 10
		killAfter = 150 // acknowledged batches before the kill
	)
	ctx := context.Background()
	p := startConsoleProcess(t, dir, args...)
	token := protectForToken(t, p)
	var current atomic.Pointer[api.Client]
	current.Store(p.api(t, api.WithToken(token)))

	var mu sync.Mutex
	acked := map[string]bool{} // record IDs of acknowledged batches
	sent := map[string]bool{}
	var ackedBatches, failedPosts atomic.Int64
	killed := make(chan struct{})
	restarted := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				batch := api.AuditBatch{}
				for i := range perBatch {
					batch.Audits = append(batch.Audits, api.Audit{ID: fmt.Sprintf("w%02d-b%02d-r%02d", w, b, i),
						Time: time.Now().UTC(), Kind: api.AuditDNS, Effect: policy.EffectAlert, Message: "DNS resolution of suspicious name yahoo.com"})
				}
				mu.Lock()
				for _, a := range batch.Audits {
					sent[a.ID] = true
				}
				mu.Unlock()
				deadline := time.Now().Add(2 * time.Minute)
				for {
					pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					res, err := current.Load().PostAudits(pctx, batch)
					cancel()
					if err == nil && res.Stored+res.Duplicates == perBatch {
						mu.Lock()
						for _, a := range batch.Audits {
							acked[a.ID] = true
						}
						mu.Unlock()
						if ackedBatches.Add(1) == killAfter {
							close(killed)
						}
						break
					}
					failedPosts.Add(1)
					if time.Now().After(deadline) {
						t.Errorf("writer %d: batch %d never acknowledged: %v", w, b, err)
						return
					}
					// Not acknowledged: wait for the restart (or a moment) and send the same batch again.
					select {
					case <-restarted:
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		})
	}
	<-killed
	p.kill() // SIGKILL: no shutdown, no flush
	ackedAtKill := ackedBatches.Load()
	p2 := startConsoleProcess(t, dir, args...)
	current.Store(p2.api(t, api.WithToken(token)))
	close(restarted)
	wg.Wait()
	p2.kill()

	st := open()
	defer st.Close()
	stored := map[string]int{}
	q := store.AuditQuery{Limit: store.MaxAuditPage}
	for {
		page, err := st.Audits(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Audits {
			stored[a.ID]++
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	lost, dup := 0, 0
	for id := range acked {
		if stored[id] == 0 {
			lost++
		}
	}
	for _, n := range stored {
		if n > 1 {
			dup++
		}
	}
	t.Logf("%d writers, %d records sent, %d acknowledged (%d batches acknowledged before the SIGKILL, %d posts failed or unanswered), %d stored: %d acknowledged lost, %d duplicated",
		writers, len(sent), len(acked), ackedAtKill, failedPosts.Load(), len(stored), lost, dup)
	if lost != 0 || dup != 0 {
		t.Fatalf("%d acknowledged audits lost, %d duplicated; want 0 and 0", lost, dup)
	}
	if len(acked) != writers*batches*perBatch || len(stored) != len(sent) {
		t.Errorf("%d acknowledged and %d stored of %d sent; every batch is retried until acknowledged", len(acked), len(stored), len(sent))
	}
}

// protectForToken protects a task through the console and returns the agent
// token in the result, as a user gets it.
func protectForToken(t *testing.T, p *consoleProcess) string {
	t.Helper()
	out, err := p.api(t, api.WithBasicAuth("ops", "ops-password-1")).ProtectFargate(context.Background(),
		[]byte(`{"family":"load","containerDefinitions":[{"name":"app","image":"app:1","entryPoint":["/app"]}]}`),
		api.ProtectOptions{ConsoleAddr: "console.example:8083"})
	if err != nil {
		t.Fatal(err)
	}
	var td struct {
		ContainerDefinitions []struct {
			Environment []struct{ Name, Value string } `json:"environment"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(out, &td); err != nil {
		t.Fatal(err)
	}
	for _, c := range td.ContainerDefinitions {
		for _, e := range c.Environment {
			if e.Name == "TASKGUARD_AGENT_TOKEN" {
				return e.Value
			}
		}
	}
	t.Fatal("no agent token in the protected task")
	return ""
}

// The first case on a real console process, on both engines: a
// batch with one 20 KB message (and a NUL in its path) and one ordinary
// audit, posted with an agent token: both are stored, the long one cut.
func TestLongAuditStoredOnBothEngines(t *testing.T) {
	for _, e := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"sqlite", func(*testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string { return []string{"--db", pgtest.Start(t).NewDatabase(t)} }},
	} {
		t.Run(e.name, func(t *testing.T) {
			p := startConsoleProcess(t, t.TempDir(), e.args(t)...)
			agent := p.api(t, api.WithToken(protectForToken(t, p)))
			ctx := context.Background()
			now := time.Now().UTC()
			long := api.Audit{ID: "long", Time: now, Kind: api.AuditWAF, Effect: policy.EffectPrevent,
				Message: "SQL injection in GET /" + strings.Repeat("a", 20<<10) + "?id=1' OR '1'='1",
				WAF:     &api.WAFDetail{EventID: "e", Method: "GET", Path: "/x\x00" + strings.Repeat("a", 20<<10), Source: "10.0.0.9"}}
			ordinary := api.Audit{ID: "ordinary", Time: now.Add(time.Second), Kind: api.AuditDNS, Effect: policy.EffectAlert,
				Message: "DNS resolution of suspicious name yahoo.com"}
			res, err := agent.PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{long, ordinary}})
			if err != nil || res.Stored != 2 || res.Truncated != 1 || len(res.Rejected) != 0 {
				t.Fatalf("PostAudits = %+v, %v; want both stored, one truncated", res, err)
			}
			admin := p.api(t, api.WithBasicAuth("ops", "ops-password-1"))
			fw, err := admin.FirewallAudits(ctx, api.AuditQuery{})
			if err != nil || len(fw.Audits) != 1 {
				t.Fatalf("firewall audits: %+v, %v", fw, err)
			}
			got := fw.Audits[0]
			if !strings.Contains(got.Message, api.TruncatedMarker) || len(got.Message) > 17<<10 ||
				!strings.HasPrefix(got.WAF.Path, "/x\u2400aaa") || !strings.Contains(got.WAF.Path, api.TruncatedMarker) {
				t.Errorf("stored %d-byte message ending %q, path starting %q", len(got.Message), got.Message[len(got.Message)-50:], got.WAF.Path[:8])
			}
			rt, err := admin.RuntimeAudits(ctx, api.AuditQuery{})
			if err != nil || len(rt.Audits) != 1 || rt.Audits[0].ID != "ordinary" {
				t.Fatalf("runtime audits: %+v, %v", rt, err)
			}
		})
	}
}
