package sqlstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The login_failures table keeps at most its bound of rows. Past it go the
// counts whose window is over, then the oldest counts not past their limit
// (even when lockouts are older), and a lockout only when every row is one.
func TestLoginFailureEviction(t *testing.T) {
	const window = 10 * time.Minute
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	steps := []struct {
		key   string
		at    time.Duration // after t0
		limit int           // 0: the first count is past it, a lockout
		want  []string      // the keys kept after the step
	}{
		{"expired", -20 * time.Minute, 5, []string{"expired"}},
		{"open-old", -3 * time.Second, 5, []string{"expired", "open-old"}},
		{"locked-1", -2 * time.Second, 0, []string{"expired", "locked-1", "open-old"}},
		{"locked-2", -time.Second, 0, []string{"expired", "locked-1", "locked-2", "open-old"}},
		{"new-1", 0, 5, []string{"locked-1", "locked-2", "new-1", "open-old"}},
		{"new-2", time.Millisecond, 5, []string{"locked-1", "locked-2", "new-1", "new-2"}},
		{"new-3", 2 * time.Millisecond, 5, []string{"locked-1", "locked-2", "new-2", "new-3"}},
		{"locked-3", 3 * time.Millisecond, 0, []string{"locked-1", "locked-2", "locked-3", "new-3"}},
		{"locked-4", 4 * time.Millisecond, 0, []string{"locked-1", "locked-2", "locked-3", "locked-4"}},
		{"locked-5", 5 * time.Millisecond, 0, []string{"locked-2", "locked-3", "locked-4", "locked-5"}},
	}
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		db, err := e.open(ctx, e.fresh(t), WithLoginFailureRows(4))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for _, st := range steps {
			if _, _, err := db.CountFailure(ctx, st.key, t0.Add(st.at), window, st.limit); err != nil {
				t.Fatalf("%s: %v", st.key, err)
			}
			rows, err := db.query(ctx, `SELECT name FROM login_failures ORDER BY name`)
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					t.Fatal(err)
				}
				kept = append(kept, k)
			}
			rows.Close()
			if !slices.Equal(kept, st.want) {
				t.Errorf("after %s: kept %s, want %s", st.key, strings.Join(kept, " "), strings.Join(st.want, " "))
			}
		}
	})
}

func TestLoginFailureRowsOption(t *testing.T) {
	_, err := OpenSQLite(context.Background(), t.TempDir()+"/taskguard.db", nil, WithLoginFailureRows(0))
	if err == nil || !strings.Contains(err.Error(), "login failure rows 0: give at least 1") {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkCountFailureFull: a password failure from a new address for a new
// user (three new counts, as the throttle takes them) on a SQLite store
// whose login_failures table holds 100,000 counts of the last minutes:
// with the bound of 100,000 (each new count reads the table's size, and
// one in a thousand evicts a thousand rows) and without one, as before the
// bound (no size read; the table grows on).
func BenchmarkCountFailureFull(b *testing.B) {
	const rows = DefaultLoginFailureRows
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, bound := range []int{DefaultLoginFailureRows, 0} {
		name := "bound=100000"
		if bound == 0 {
			name = "unbounded"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			db, err := OpenSQLite(ctx, b.TempDir()+"/taskguard.db", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.failureRows = bound
			if _, err := db.exec(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
				INSERT INTO login_failures (name, attempts, last_at, lock_after) SELECT 'old-' || x, 1, ? + x, 5 FROM c`,
				rows, millis(t0)); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				now := t0.Add(time.Minute + time.Duration(i)*time.Millisecond)
				for _, kind := range []string{"p", "u", "a"} {
					if _, _, err := db.CountFailure(ctx, kind+":new-"+strconv.Itoa(i), now, 10*time.Minute, 10); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
		})
	}
}
