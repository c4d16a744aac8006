package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/server"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"github.com/taskguard/taskguard/console/store/sqlite"
	"golang.org/x/crypto/bcrypt"
)

func openSQLite(b *testing.B) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "taskguard.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// postgresOpener starts one cluster for the parent benchmark (sub-benchmarks
// run several times; the cluster lives until the parent ends) and opens a
// fresh database on it for each run.
func postgresOpener(parent *testing.B) func(*testing.B) store.Store {
	var cluster *pgtest.Cluster
	return func(b *testing.B) store.Store {
		if cluster == nil {
			cluster = pgtest.Start(parent)
		}
		st, err := postgres.Open(context.Background(), cluster.NewDatabase(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
}

func batch(n, size int) []api.Audit {
	out := make([]api.Audit, size)
	now := time.Now()
	for i := range out {
		out[i] = api.Audit{ID: fmt.Sprintf("b%d-%d", n, i), Time: now, TaskFamily: "web", TaskID: "t", Container: "app",
			Kind: api.AuditDNS, Effect: policy.EffectPrevent, Rule: "seeds", Message: "DNS resolution of suspicious name yahoo.com",
			Network: &api.NetworkDetail{Direction: "dns", Domain: "yahoo.com"}}
	}
	return out
}

// BenchmarkAuditIngest stores batches of 100 audits, as defenders post them.
func BenchmarkAuditIngest(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(*testing.B) store.Store
	}{{"sqlite", openSQLite}, {"postgres", postgresOpener(b)}} {
		b.Run(db.name, func(b *testing.B) {
			st := db.open(b)
			ctx := context.Background()
			batches := make([][]api.Audit, b.N)
			for i := range batches {
				batches[i] = batch(i, 100)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n, err := st.InsertAudits(ctx, batches[i], time.Now())
				if err != nil || n != 100 {
					b.Fatalf("InsertAudits = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "audits/s")
		})
	}
}

// BenchmarkLongPollFanOut holds 1,000 defenders in GET /api/v1/agent/policy
// ?wait=60s, changes the policy and measures until every one of them has
// the new revision (real HTTP on loopback, plain HTTP to keep 1,000 TLS
// handshakes out of the figure).
func BenchmarkLongPollFanOut(b *testing.B) {
	const defenders = 1000
	for _, db := range []struct {
		name string
		open func(*testing.B) store.Store
	}{{"sqlite", openSQLite}, {"postgres", postgresOpener(b)}} {
		b.Run(db.name, func(b *testing.B) {
			st := db.open(b)
			ctx := context.Background()
			authn := auth.New(auth.Config{Store: st, BcryptCost: bcrypt.MinCost})
			if err := authn.CreateUser(ctx, "admin", "admin-password", auth.RoleAdmin); err != nil {
				b.Fatal(err)
			}
			token, err := authn.AgentToken(ctx, "web")
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(server.New(server.Config{Store: st, Auth: authn, Logger: slog.New(slog.DiscardHandler)}))
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: defenders, MaxConnsPerHost: 0}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			admin, _ := api.NewClient(srv.URL, api.WithHTTPClient(hc), api.WithBasicAuth("admin", "admin-password"))
			agent, _ := api.NewClient(srv.URL, api.WithHTTPClient(hc), api.WithToken(token))
			var worst []time.Duration
			for i := 0; i < b.N; i++ {
				rev, err := st.PolicyRevision(ctx)
				if err != nil {
					b.Fatal(err)
				}
				arrived := make(chan time.Time, defenders)
				var wg sync.WaitGroup
				for range defenders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						p, _, modified, err := agent.AgentPolicy(ctx, api.ETag(rev), 60*time.Second)
						if err != nil || !modified || p.Revision != rev+1 {
							b.Errorf("a defender got revision %d (modified %v), %v", p.Revision, modified, err)
						}
						arrived <- time.Now()
					}()
				}
				time.Sleep(2 * time.Second) // every defender is waiting
				b.ResetTimer()
				changed := time.Now()
				if _, err := admin.AddRuntimeRule(ctx, policy.RuntimeRule{Name: fmt.Sprintf("r%d", i)}); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
				b.StopTimer()
				close(arrived)
				var last time.Time
				n := 0
				for t := range arrived {
					n++
					if t.After(last) {
						last = t
					}
				}
				if n != defenders {
					b.Fatalf("%d of %d defenders got the change", n, defenders)
				}
				worst = append(worst, last.Sub(changed))
			}
			slices.Sort(worst)
			b.ReportMetric(float64(worst[len(worst)/2].Milliseconds()), "ms-to-all-1000")
			b.ReportMetric(defenders, "defenders")
		})
	}
}
