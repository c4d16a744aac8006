package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// dialect is what differs between the engines. Queries are written once with
// "?" placeholders and the type names of migrations as {{blob}}, {{int}} and
// {{serial}}.
type dialect struct {
	name string
	// numbered placeholders ($1, $2...) instead of "?".
	numbered bool
	// types replaces the type names of migrations.
	types *strings.Replacer
	// position is the SQL function that finds a substring: (haystack, needle) > 0.
	position string
	// isUnique reports whether err is a unique or primary key violation.
	isUnique func(err error) bool
	// lock takes the migration lock on conn; unlock releases it. SQLite needs
	// none: each migration's transaction takes the write lock first.
	lock func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// notify runs inside the transaction that saves policy revision rev, so
	// other processes hear of it when (and only if) it commits.
	notify func(ctx context.Context, tx *sql.Tx, rev int64) error
	// tableExists is a query with one placeholder, the table name, that
	// answers true when the table exists.
	tableExists string
	// legacyVersion maps the version recorded by the engine's old store in
	// schema_migrations to the version of the shared migration list.
	legacyVersion func(v int) (int, bool)
}

// rebind turns the "?" placeholders of q into the dialect's.
func (d *dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

var sqliteDialect = &dialect{
	name:        "sqlite",
	types:       strings.NewReplacer("{{blob}}", "BLOB", "{{int}}", "INTEGER", "{{serial}}", "INTEGER PRIMARY KEY AUTOINCREMENT"),
	position:    "instr",
	tableExists: `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`,
	isUnique: func(err error) bool {
		var e *sqlite3.Error
		if !errors.As(err, &e) {
			return false
		}
		switch e.Code() {
		case sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3lib.SQLITE_CONSTRAINT_UNIQUE:
			return true
		}
		return false
	},
	lock:   func(context.Context, *sql.Conn) (func(), error) { return func() {}, nil },
	notify: func(context.Context, *sql.Tx, int64) error { return nil },
	// The SQLite store numbered its migrations as the shared list does.
	legacyVersion: func(v int) (int, bool) { return v, v >= 1 && v <= 3 },
}

// notifyChannel is the NOTIFY channel of policy revisions.
const notifyChannel = "taskguard_policy"

// migrationLock is the PostgreSQL advisory lock key held while migrating.
const migrationLock = 0x7461736b67756172 // "taskguar"

var postgresDialect = &dialect{
	name:        "postgres",
	numbered:    true,
	types:       strings.NewReplacer("{{blob}}", "BYTEA", "{{int}}", "BIGINT", "{{serial}}", "BIGSERIAL PRIMARY KEY"),
	position:    "strpos",
	tableExists: `SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`,
	isUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
	lock: func(ctx context.Context, conn *sql.Conn) (func(), error) {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
			return nil, err
		}
		return func() {
			conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
		}, nil
	},
	notify: func(ctx context.Context, tx *sql.Tx, rev int64) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, strconv.FormatInt(rev, 10))
		return err
	},
	// The PostgreSQL store had users..scans in its version 1 (the shared
	// list's 1 and 2) and inventories in its version 2 (the shared 3).
	legacyVersion: func(v int) (int, bool) {
		switch v {
		case 1:
			return 2, true
		case 2:
			return 3, true
		}
		return 0, false
	},
}
