package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/store"
)

// DB is a store.Store over one SQLite file or one PostgreSQL database.
type DB struct {
	db      *sql.DB
	dialect *dialect
	log     *slog.Logger
	watch   *revisions
	// stop ends the goroutine that feeds watch from other processes.
	stop context.CancelFunc
	done sync.WaitGroup
	// failureRows bounds the login_failures table (WithLoginFailureRows).
	failureRows int
}

var _ store.Store = (*DB)(nil)

func (s *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.dialect.rebind(q), args...)
}

func (s *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.dialect.rebind(q), args...)
}

func (s *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.dialect.rebind(q), args...)
}

// Engine names the database engine: "sqlite" or "postgres".
func (s *DB) Engine() string { return s.dialect.name }

// Stats reports the store's connection pool (database/sql's counts).
func (s *DB) Stats() sql.DBStats { return s.db.Stats() }

// PolicyWaiters is how many WaitPolicy calls are blocked in this process (for
// tests that must know a waiter is in place before they change the policy).
func (s *DB) PolicyWaiters() int { return s.watch.count() }

// Close stops watching for policy changes, makes waiters return and closes
// the database.
func (s *DB) Close() error {
	s.stop()
	s.watch.close()
	s.done.Wait()
	return s.db.Close()
}

// CreateUser implements store.Store.
func (s *DB) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.exec(ctx,
		`INSERT INTO users (username, role, password_hash, task_families, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.Username, u.Role, u.PasswordHash, joinFamilies(u.TaskFamilies), boolInt(u.Disabled), millis(u.CreatedAt), millis(u.UpdatedAt))
	if s.dialect.isUnique(err) {
		return fmt.Errorf("user %q: %w", u.Username, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return nil
}

// User implements store.Store.
func (s *DB) User(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx,
		`SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("read user %q: %w", username, err)
	}
	return u, nil
}

// Users implements store.Store.
func (s *DB) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
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
func (s *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetPassword implements store.Store.
func (s *DB) SetPassword(ctx context.Context, username string, hash []byte, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ?`, hash, millis(now), username)
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
func (s *DB) SaveToken(ctx context.Context, t store.Token) error {
	_, err := s.exec(ctx,
		`INSERT INTO tokens (digest, subject, role, task_family, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (digest) DO NOTHING`,
		t.Digest, t.Subject, t.Role, t.TaskFamily, millis(t.CreatedAt), millis(t.ExpiresAt), millis(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("save token for %q: %w", t.Subject, err)
	}
	return nil
}

// Token implements store.Store.
func (s *DB) Token(ctx context.Context, digest []byte) (store.Token, error) {
	t, err := scanToken(s.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE digest = ?`, digest))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("read token: %w", err)
	}
	return t, nil
}

// DeleteExpiredTokens implements store.Store.
func (s *DB) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM tokens WHERE expires_at <> 0 AND expires_at <= ?`, millis(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return res.RowsAffected()
}

// EnsureSecret implements store.Store.
func (s *DB) EnsureSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := s.exec(ctx,
		`INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, value, millis(time.Now())); err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	var stored []byte
	if err := s.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&stored); err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, err)
	}
	return stored, nil
}

type rowScanner interface{ Scan(dest ...any) error }

const userColumns = `username, role, password_hash, task_families, disabled, created_at, updated_at`

func scanUser(s rowScanner) (store.User, error) {
	var u store.User
	var created, updated, disabled int64
	var families string
	if err := s.Scan(&u.Username, &u.Role, &u.PasswordHash, &families, &disabled, &created, &updated); err != nil {
		return store.User{}, err
	}
	u.TaskFamilies, u.Disabled = splitFamilies(families), disabled != 0
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
