package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are applied in order, each once, each in its own transaction,
// under an advisory lock so replicas starting together apply each once.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	1: `
CREATE TABLE users (
	username      TEXT PRIMARY KEY,
	role          TEXT NOT NULL,
	password_hash BYTEA NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);
CREATE TABLE tokens (
	digest      BYTEA PRIMARY KEY,
	subject     TEXT NOT NULL,
	role        TEXT NOT NULL,
	task_family TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_expires_at ON tokens (expires_at) WHERE expires_at <> 0;
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE policy_revisions (
	revision   BIGINT PRIMARY KEY,
	created_at BIGINT NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	rule       TEXT NOT NULL DEFAULT '',
	document   TEXT NOT NULL
);
CREATE TABLE audits (
	seq         BIGSERIAL PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	time        BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
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
	seq         BIGSERIAL PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	received_at BIGINT NOT NULL,
	publisher   TEXT NOT NULL DEFAULT '',
	image       TEXT NOT NULL DEFAULT '',
	digest      TEXT NOT NULL DEFAULT '',
	task_family TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL DEFAULT '',
	summary     TEXT NOT NULL,
	report      TEXT NOT NULL
);
CREATE INDEX scans_image ON scans (image, seq);`,
	2: `
CREATE TABLE inventories (
	seq          BIGSERIAL PRIMARY KEY,
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

// migrationLock is the advisory lock key held while migrating.
const migrationLock = 0x7461736b67756172 // "taskguar"

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	var newest *int
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if newest != nil && *newest > SchemaVersion() {
		return fmt.Errorf("the database has schema version %d, newer than this console knows (%d): run a newer taskguard-console", *newest, SchemaVersion())
	}
	for v := 1; v < len(migrations); v++ {
		if newest != nil && v <= *newest {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, extract(epoch from now())*1000)`, v)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return nil
}
