// Package sqlite is the console's embedded store: a single SQLite file in the
// data directory, opened through modernc.org/sqlite (pure Go, so the console
// stays CGO_ENABLED=0). Open runs the versioned migrations before it returns.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/taskguard/taskguard/console/store"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// DB is a store.Store over one SQLite database file.
type DB struct {
	db    *sql.DB
	watch *watcher
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path and migrates it to the
// latest schema.
func Open(ctx context.Context, path string) (*DB, error) {
	// The file holds password hashes: only the console's user may read it.
	// SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate database %s: %w", path, err)
	}
	d := &DB{db: db}
	d.watch = newWatcher(d.PolicyRevision)
	return d, nil
}

// Close closes the database; policy waiters return.
func (d *DB) Close() error {
	d.watch.close()
	return d.db.Close()
}

// CreateUser implements store.Store.
func (d *DB) CreateUser(ctx context.Context, u store.User) error {
	_, err := d.db.ExecContext(ctx,
		`INSERT INTO users (username, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		u.Username, u.Role, u.PasswordHash, millis(u.CreatedAt), millis(u.UpdatedAt))
	if isConstraint(err) {
		return fmt.Errorf("user %q: %w", u.Username, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return nil
}

// User implements store.Store.
func (d *DB) User(ctx context.Context, username string) (store.User, error) {
	row := d.db.QueryRowContext(ctx,
		`SELECT username, role, password_hash, created_at, updated_at FROM users WHERE username = ?`, username)
	u, err := scanUser(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("read user %q: %w", username, err)
	}
	return u, nil
}

// Users implements store.Store.
func (d *DB) Users(ctx context.Context) ([]store.User, error) {
	rows, err := d.db.QueryContext(ctx,
		`SELECT username, role, password_hash, created_at, updated_at FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// CountUsers implements store.Store.
func (d *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetPassword implements store.Store.
func (d *DB) SetPassword(ctx context.Context, username string, hash []byte, now time.Time) error {
	res, err := d.db.ExecContext(ctx,
		`UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ?`, hash, millis(now), username)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	} else if n == 0 {
		return fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	return nil
}

// SaveToken implements store.Store.
func (d *DB) SaveToken(ctx context.Context, t store.Token) error {
	_, err := d.db.ExecContext(ctx,
		`INSERT INTO tokens (digest, subject, role, task_family, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (digest) DO NOTHING`,
		t.Digest, t.Subject, t.Role, t.TaskFamily, millis(t.CreatedAt), millis(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("save token for %q: %w", t.Subject, err)
	}
	return nil
}

// Token implements store.Store.
func (d *DB) Token(ctx context.Context, digest []byte) (store.Token, error) {
	var t store.Token
	var created, expires int64
	err := d.db.QueryRowContext(ctx,
		`SELECT digest, subject, role, task_family, created_at, expires_at FROM tokens WHERE digest = ?`, digest).
		Scan(&t.Digest, &t.Subject, &t.Role, &t.TaskFamily, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("read token: %w", err)
	}
	t.CreatedAt, t.ExpiresAt = fromMillis(created), fromMillis(expires)
	return t, nil
}

// DeleteExpiredTokens implements store.Store.
func (d *DB) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM tokens WHERE expires_at <> 0 AND expires_at <= ?`, millis(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return res.RowsAffected()
}

// EnsureSecret implements store.Store.
func (d *DB) EnsureSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := d.db.ExecContext(ctx,
		`INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, value, millis(time.Now())); err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	var stored []byte
	if err := d.db.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&stored); err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, err)
	}
	return stored, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner) (store.User, error) {
	var u store.User
	var created, updated int64
	if err := s.Scan(&u.Username, &u.Role, &u.PasswordHash, &created, &updated); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromMillis(created), fromMillis(updated)
	return u, nil
}

// Times are stored as Unix milliseconds; 0 stands for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func isConstraint(err error) bool {
	var e *sqlite3.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3lib.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}
