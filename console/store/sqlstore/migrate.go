package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, each in its own transaction,
// on both engines. Never edit one that has shipped: append a new one. Type
// names in braces are the dialect's ({{blob}}, {{int}}, {{serial}}).
//
// 1 to 3 are the schema the two older per-engine stores had (SQLite numbered
// them so; PostgreSQL had 1+2 as its 1 and 3 as its 2); see dialect.legacyVersion.
var migrations = []string{
	1: `
CREATE TABLE users (
	username      TEXT PRIMARY KEY,
	role          TEXT NOT NULL,
	password_hash {{blob}} NOT NULL,
	created_at    {{int}} NOT NULL,
	updated_at    {{int}} NOT NULL
);
CREATE TABLE tokens (
	digest      {{blob}} PRIMARY KEY,
	subject     TEXT NOT NULL,
	role        TEXT NOT NULL,
	task_family TEXT NOT NULL DEFAULT '',
	created_at  {{int}} NOT NULL,
	expires_at  {{int}} NOT NULL DEFAULT 0
);
CREATE INDEX tokens_expires_at ON tokens (expires_at) WHERE expires_at <> 0;
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      {{blob}} NOT NULL,
	created_at {{int}} NOT NULL
);`,
	2: `
CREATE TABLE policy_revisions (
	revision   {{int}} PRIMARY KEY,
	created_at {{int}} NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	rule       TEXT NOT NULL DEFAULT '',
	document   TEXT NOT NULL
);
CREATE TABLE audits (
	seq         {{serial}},
	id          TEXT NOT NULL UNIQUE,
	time        {{int}} NOT NULL,
	received_at {{int}} NOT NULL,
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
	seq         {{serial}},
	id          TEXT NOT NULL UNIQUE,
	received_at {{int}} NOT NULL,
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
	seq          {{serial}},
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
	4: `
ALTER TABLE users ADD COLUMN task_families TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN disabled {{int}} NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN revoked_at {{int}} NOT NULL DEFAULT 0;
CREATE INDEX tokens_subject ON tokens (subject);
CREATE TABLE login_failures (
	name     TEXT PRIMARY KEY,
	attempts {{int}} NOT NULL,
	last_at  {{int}} NOT NULL
);
CREATE INDEX login_failures_last_at ON login_failures (last_at);`,
	// lock_after is the limit a count was taken with: a count past it is a
	// lockout, which eviction keeps (rows from before count as lockouts).
	5: `
ALTER TABLE login_failures ADD COLUMN lock_after {{int}} NOT NULL DEFAULT 0;`,
}

// SchemaVersion is the version Open migrates to.
func SchemaVersion() int { return len(migrations) - 1 }

// versionTable records the applied versions of the shared list.
const versionTable = "taskguard_schema"

// legacyTable is where the older per-engine stores recorded their versions.
// Once a database is on the shared list, it holds legacyMarker, so an older
// console refuses the database ("newer than this console knows") instead of
// running without the tables it does not know about.
const (
	legacyTable  = "schema_migrations"
	legacyMarker = 1000
)

func (s *DB) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	unlock, err := s.dialect.lock(ctx, conn)
	if err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer unlock()
	ddl := s.dialect.types.Replace(`CREATE TABLE IF NOT EXISTS ` + versionTable + ` (
		version    INTEGER PRIMARY KEY,
		applied_at {{int}} NOT NULL)`)
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return err
	}
	if err := s.adoptLegacy(ctx, conn); err != nil {
		return err
	}
	var newest sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT max(version) FROM `+versionTable).Scan(&newest); err != nil {
		return err
	}
	if newest.Valid && int(newest.Int64) > SchemaVersion() {
		return fmt.Errorf("the database has schema version %d, newer than this console knows (%d): run a newer taskguard-console", newest.Int64, SchemaVersion())
	}
	for v := 1; v < len(migrations); v++ {
		if err := s.apply(ctx, conn, v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	ddl = s.dialect.types.Replace(`CREATE TABLE IF NOT EXISTS ` + legacyTable + ` (
		version    INTEGER PRIMARY KEY,
		applied_at {{int}} NOT NULL)`)
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, s.dialect.rebind(`INSERT INTO `+legacyTable+` (version, applied_at) VALUES (?, ?)
		ON CONFLICT (version) DO NOTHING`), legacyMarker, time.Now().UnixMilli())
	return err
}

// adoptLegacy records, in a database made by an older per-engine store, the
// versions of the shared list its schema already has.
func (s *DB) adoptLegacy(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+versionTable).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, s.dialect.rebind(s.dialect.tableExists), legacyTable).Scan(&exists); err != nil {
		return fmt.Errorf("look for %s: %w", legacyTable, err)
	}
	if !exists {
		return nil
	}
	var legacy sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.dialect.rebind(`SELECT max(version) FROM `+legacyTable+` WHERE version < ?`), legacyMarker).Scan(&legacy); err != nil {
		return err
	}
	if !legacy.Valid {
		return nil
	}
	v, ok := s.dialect.legacyVersion(int(legacy.Int64))
	if !ok {
		return fmt.Errorf("the database has %s schema version %d of an older console, which this console cannot upgrade", s.dialect.name, legacy.Int64)
	}
	now := time.Now().UnixMilli()
	for i := 1; i <= v; i++ {
		if _, err := tx.ExecContext(ctx, s.dialect.rebind(`INSERT INTO `+versionTable+` (version, applied_at) VALUES (?, ?)`), i, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// apply runs migration v unless it is recorded. On SQLite the transaction
// takes the write lock first (_txlock=immediate); on PostgreSQL the advisory
// lock is held; so two processes opening one database apply it once.
func (s *DB) apply(ctx context.Context, conn *sql.Conn, v int) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, s.dialect.rebind(`SELECT count(*) FROM `+versionTable+` WHERE version = ?`), v).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.dialect.types.Replace(migrations[v])); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.dialect.rebind(`INSERT INTO `+versionTable+` (version, applied_at) VALUES (?, ?)`),
		v, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}
