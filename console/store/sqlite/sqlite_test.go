package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "taskguard.db"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskguard.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUser(ctx, store.User{Username: "a", Role: "admin", PasswordHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if n, err := db.CountUsers(ctx); err != nil || n != 1 {
		t.Fatalf("after reopen CountUsers = %d, %v", n, err)
	}
	var versions int
	if err := db.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows, want %d (each migration once)", versions, SchemaVersion())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskguard.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer than this console") {
		t.Fatalf("Open of a newer schema: %v, want a refusal", err)
	}
}

func TestTwoProcessesOpenOneFile(t *testing.T) {
	// Two opens of one file (the CLI's "user add" while the server runs) must
	// both migrate cleanly and see each other's writes.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskguard.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.CreateUser(ctx, store.User{Username: "x", Role: "ci", PasswordHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.User(ctx, "x"); err != nil {
		t.Fatalf("second handle does not see the write: %v", err)
	}
	var mode string
	if err := b.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// Two processes on one database file (two handles here): a change written
// through one wakes a waiter on the other, through the database.
func TestWaitPolicyAcrossHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskguard.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
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
			t.Errorf("WaitPolicy: %v", err)
		}
		woke <- rev
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := a.SavePolicy(ctx, 0, policy.Policy{}, store.PolicyChange{Actor: "x", Action: "init"}); err != nil {
		t.Fatal(err)
	}
	if rev := <-woke; rev != 1 {
		t.Fatalf("the other handle woke with revision %d, want 1", rev)
	}
}
