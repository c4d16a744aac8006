package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	1: `
CREATE TABLE users (
	username      TEXT PRIMARY KEY,
	role          TEXT NOT NULL,
	password_hash BLOB NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE TABLE tokens (
	digest      BLOB PRIMARY KEY,
	subject     TEXT NOT NULL,
	role        TEXT NOT NULL,
	task_family TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_expires_at ON tokens (expires_at) WHERE expires_at <> 0;
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL
);`,
	2: `
CREATE TABLE policy_revisions (
	revision   INTEGER PRIMARY KEY,
	created_at INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	rule       TEXT NOT NULL DEFAULT '',
	document   TEXT NOT NULL
);
CREATE TABLE audits (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT NOT NULL UNIQUE,
	time        INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	task_family TEXT NOT NULL DEFAULT '',
	task_id     TEXT NOT NULL DEFAULT '',
	container   TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL,
	effect      TEXT NOT NULL DEFAULT '',
	rule        TEXT NOT NULL DEFAULT '',
	message     TEXT NOT NULL DEFAULT '',
	body        TEXT NOT NULL
);
CREATE INDEX audits_time ON audits (time, seq);
CREATE INDEX audits_kind_time ON audits (kind, time);
CREATE TABLE scans (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT NOT NULL UNIQUE,
	received_at INTEGER NOT NULL,
	publisher   TEXT NOT NULL DEFAULT '',
	image       TEXT NOT NULL DEFAULT '',
	digest      TEXT NOT NULL DEFAULT '',
	task_family TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL DEFAULT '',
	summary     TEXT NOT NULL,
	report      TEXT NOT NULL
);
CREATE INDEX scans_image ON scans (image, seq);`,
	3: `
CREATE TABLE inventories (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	task_family  TEXT NOT NULL,
	task_id      TEXT NOT NULL,
	container    TEXT NOT NULL,
	image        TEXT NOT NULL DEFAULT '',
	image_digest TEXT NOT NULL DEFAULT '',
	hash         TEXT NOT NULL,
	received_at  BIGINT NOT NULL,
	body         TEXT NOT NULL,
	UNIQUE (task_family, task_id, container)
);
CREATE INDEX inventories_image ON inventories (image);`,
}

// SchemaVersion is the version Open migrates to.
func SchemaVersion() int { return len(migrations) - 1 }

func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if newest.Valid && int(newest.Int64) > SchemaVersion() {
		return fmt.Errorf("the database has schema version %d, newer than this console knows (%d): run a newer taskguard-console", newest.Int64, SchemaVersion())
	}
	for v := 1; v < len(migrations); v++ {
		if err := apply(ctx, db, v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return nil
}

// apply runs migration v unless it is recorded. The transaction takes the
// write lock first (_txlock=immediate), so two processes opening the same file
// cannot both apply it.
func apply(ctx context.Context, db *sql.DB, v int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		v, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}
