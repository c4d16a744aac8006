package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store"
)

// Databases left by the older per-engine stores (testdata/<engine>-v<N>.sql:
// their own DDL, their schema_migrations rows and one row per table) open,
// keep every row, gain what they lacked and are then on the shared list.
func TestMigrateLegacyDatabases(t *testing.T) {
	tests := []struct {
		fixture string
		engine  string
		// hasInventories is whether the legacy schema already had the table.
		hasInventories bool
	}{
		{"sqlite-v2", "sqlite", false},
		{"sqlite-v3", "sqlite", true},
		{"postgres-v1", "postgres", false},
		{"postgres-v2", "postgres", true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			var e engine
			for _, x := range engines() {
				if x.name == tt.engine {
					e = x
				}
			}
			ctx := context.Background()
			addr := e.fresh(t)
			loadFixture(t, e.name, addr, filepath.Join("testdata", tt.fixture+".sql"))

			db, err := e.open(ctx, addr)
			if err != nil {
				t.Fatalf("open the %s database: %v", tt.fixture, err)
			}
			defer db.Close()
			checkVersions(t, db)
			checkLegacyRows(t, db, tt.hasInventories)

			// The schema works for writes too: a new audit, a new inventory.
			if n, err := db.InsertAudits(ctx, []api.Audit{{ID: "new-1", Kind: api.AuditDNS, Message: "m"}}, fixtureTime); err != nil || n != 1 {
				t.Fatalf("InsertAudits after the migration = %d, %v", n, err)
			}
			inv := store.StoredInventory{ReceivedAt: fixtureTime, Inventory: api.Inventory{TaskFamily: "shop", TaskID: "t2", Container: "web", Image: "shop:2", Hash: "h2"}}
			if err := db.SaveInventory(ctx, inv); err != nil {
				t.Fatalf("SaveInventory after the migration: %v", err)
			}
			db.Close()

			// Opening again changes nothing.
			db, err = e.open(ctx, addr)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer db.Close()
			checkVersions(t, db)
		})
	}
}

// An older console opening a database on the shared list refuses it: its
// schema_migrations holds the marker, newer than any version it knew.
func TestLegacyMarkerStopsOlderConsoles(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		db, _ := openFresh(t, e)
		var newest int
		if err := db.queryRow(context.Background(), `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
			t.Fatal(err)
		}
		// The older stores refused any version above their own (3 on SQLite, 2 on PostgreSQL).
		if newest <= 3 {
			t.Fatalf("schema_migrations max = %d: an older console would run on this database", newest)
		}
	})
}

// fixtureMillis is the time of every row of the fixtures.
const fixtureMillis = 1764000000000

var fixtureTime = time.UnixMilli(fixtureMillis).UTC()

func checkLegacyRows(t *testing.T, db *DB, hasInventories bool) {
	t.Helper()
	ctx := context.Background()
	u, err := db.User(ctx, "admin")
	if err != nil || u.Role != "admin" || string(u.PasswordHash) != "$2a$hash" || u.CreatedAt.UnixMilli() != fixtureMillis {
		t.Errorf("legacy user = %+v, %v", u, err)
	}
	tok, err := db.Token(ctx, []byte{1, 2, 3, 4, 5})
	if err != nil || tok.TaskFamily != "shop" || !tok.ExpiresAt.IsZero() {
		t.Errorf("legacy token = %+v, %v", tok, err)
	}
	sec, err := db.EnsureSecret(ctx, "session-key", []byte("other"))
	if err != nil || string(sec) != "\x00\x01\x02\x03" {
		t.Errorf("legacy secret = %x, %v", sec, err)
	}
	p, err := db.Policy(ctx)
	if err != nil || p.Revision != 1 || len(p.Runtime) != 1 || p.Runtime[0].Name != "r1" {
		t.Errorf("legacy policy = %+v, %v", p, err)
	}
	if rev, err := db.SavePolicy(ctx, 1, p, store.PolicyChange{Actor: "a", Action: "edit"}); err != nil || rev != 2 {
		t.Errorf("SavePolicy on the legacy revision 1 = %d, %v", rev, err)
	}
	page, err := db.Audits(ctx, store.AuditQuery{Text: "yahoo"})
	if err != nil || len(page.Audits) != 1 || page.Audits[0].ID != "old-1" {
		t.Errorf("legacy audits = %+v, %v", page.Audits, err)
	}
	sc, err := db.Scan(ctx, "scan-1")
	if err != nil || sc.Image != "shop:1" || string(sc.Report) != `{"image":"shop:1"}` {
		t.Errorf("legacy scan = %+v, %v", sc, err)
	}
	invs, err := db.Inventories(ctx, store.InventoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]int{true: 1, false: 0}[hasInventories]; len(invs) != want {
		t.Errorf("legacy inventories = %d, want %d", len(invs), want)
	}
}

// loadFixture runs the statements of a fixture file on a fresh database,
// bypassing the store.
func loadFixture(t *testing.T, engine, addr, path string) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	if engine == "sqlite" {
		db, err = sql.Open("sqlite", "file:"+addr)
	} else {
		db, err = sql.Open("pgx", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for stmt := range strings.SplitSeq(string(text), ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, stmt)
		}
	}
}

var _ = stdlib.GetDefaultDriver // registers "pgx"
