package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"github.com/taskguard/taskguard/console/store/storetest"
)

func TestConformance(t *testing.T) {
	cluster := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := Open(context.Background(), cluster.NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

// Two stores on one database (two console replicas): a change saved through
// one wakes a waiter on the other, through NOTIFY, and migrations run once.
func TestReplicasShareChanges(t *testing.T) {
	cluster := pgtest.Start(t)
	url := cluster.NewDatabase(t)
	ctx := context.Background()
	a, err := Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	woke := make(chan int64, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		rev, err := b.WaitPolicy(wctx, 0)
		if err != nil {
			t.Errorf("WaitPolicy on replica b: %v", err)
		}
		woke <- rev
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := a.SavePolicy(ctx, 0, policy.Policy{Runtime: []policy.RuntimeRule{{Name: "r"}}}, store.PolicyChange{Actor: "x", Action: "add"}); err != nil {
		t.Fatal(err)
	}
	if rev := <-woke; rev != 1 {
		t.Fatalf("replica b woke with revision %d, want 1", rev)
	}
	t.Logf("change reached the other replica in %v", time.Since(start))
	p, err := b.Policy(ctx)
	if err != nil || p.Revision != 1 || p.Runtime[0].Name != "r" {
		t.Fatalf("replica b reads %+v, %v", p, err)
	}
	var n int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
		t.Errorf("schema_migrations has %d rows, %v; want %d", n, err, SchemaVersion())
	}
}
