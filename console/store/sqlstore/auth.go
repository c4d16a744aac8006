package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/store"
)

const tokenColumns = `digest, subject, role, task_family, created_at, expires_at, revoked_at`

func scanToken(s rowScanner) (store.Token, error) {
	var t store.Token
	var created, expires, revoked int64
	if err := s.Scan(&t.Digest, &t.Subject, &t.Role, &t.TaskFamily, &created, &expires, &revoked); err != nil {
		return store.Token{}, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMillis(created), fromMillis(expires), fromMillis(revoked)
	return t, nil
}

// Task families are kept comma separated: a family is letters, digits, '-'
// and '_' (auth.ValidateTaskFamily), never a comma.
func joinFamilies(f []string) string { return strings.Join(f, ",") }

func splitFamilies(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// UpdateUser implements store.Store.
func (s *DB) UpdateUser(ctx context.Context, u store.User) error {
	res, err := s.exec(ctx, `UPDATE users SET role = ?, task_families = ?, disabled = ?, updated_at = ? WHERE username = ?`,
		u.Role, joinFamilies(u.TaskFamilies), boolInt(u.Disabled), millis(u.UpdatedAt), u.Username)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.Username, err)
	}
	return affectedOne(res, fmt.Sprintf("user %q", u.Username))
}

// DeleteUser implements store.Store.
func (s *DB) DeleteUser(ctx context.Context, username string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", username, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.dialect.rebind(`DELETE FROM users WHERE username = ?`), username)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", username, err)
	}
	if err := affectedOne(res, fmt.Sprintf("user %q", username)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.dialect.rebind(`DELETE FROM tokens WHERE subject = ?`), username); err != nil {
		return fmt.Errorf("delete the tokens of %q: %w", username, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete user %q: %w", username, err)
	}
	return nil
}

type sqlResult interface{ RowsAffected() (int64, error) }

func affectedOne(res sqlResult, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// tokenWhere builds the WHERE clause of q (always true when q is empty).
func tokenWhere(q store.TokenQuery) (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	if q.Digest != nil {
		conds, args = append(conds, "digest = ?"), append(args, q.Digest)
	}
	if q.Subject != "" {
		conds, args = append(conds, "subject = ?"), append(args, q.Subject)
	}
	if q.TaskFamily != "" {
		conds, args = append(conds, "task_family = ?"), append(args, q.TaskFamily)
	}
	if q.Role != "" {
		conds, args = append(conds, "role = ?"), append(args, q.Role)
	}
	return strings.Join(conds, " AND "), args
}

// Tokens implements store.Store.
func (s *DB) Tokens(ctx context.Context, q store.TokenQuery) ([]store.Token, error) {
	where, args := tokenWhere(q)
	limit := q.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE `+where+
		fmt.Sprintf(` ORDER BY created_at DESC, digest LIMIT %d`, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeTokens implements store.Store.
func (s *DB) RevokeTokens(ctx context.Context, q store.TokenQuery, at time.Time) (int64, error) {
	where, args := tokenWhere(q)
	ms := millis(at)
	res, err := s.exec(ctx, `UPDATE tokens SET revoked_at = ?
		WHERE (revoked_at = 0 OR revoked_at > ?) AND (expires_at = 0 OR expires_at > ?) AND `+where,
		append([]any{ms, ms, ms}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens: %w", err)
	}
	return res.RowsAffected()
}

// BoundTokens implements store.Store.
func (s *DB) BoundTokens(ctx context.Context, q store.TokenQuery, expires time.Time) (int64, error) {
	if expires.IsZero() {
		return 0, errors.New("bound tokens: no expiry given")
	}
	where, args := tokenWhere(q)
	res, err := s.exec(ctx, `UPDATE tokens SET expires_at = ? WHERE expires_at = 0 AND `+where,
		append([]any{millis(expires)}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("bound tokens without an expiry: %w", err)
	}
	return res.RowsAffected()
}

// CountFailure implements store.Store: one upsert, atomic on both engines.
// A count that starts (a new key, or one past its window) may fill the
// table: then rows are evicted (evictFailures).
func (s *DB) CountFailure(ctx context.Context, key string, now time.Time, window time.Duration, limit int) (int, time.Time, error) {
	nowMs, cutoff := millis(now), millis(now.Add(-window))
	var count, last int64
	err := s.queryRow(ctx, `INSERT INTO login_failures (name, attempts, last_at, lock_after) VALUES (?, 1, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			attempts = CASE WHEN login_failures.last_at <= ? THEN 1
				WHEN login_failures.attempts > ? THEN login_failures.attempts
				ELSE login_failures.attempts + 1 END,
			last_at = CASE WHEN login_failures.last_at > ? AND login_failures.attempts > ? THEN login_failures.last_at
				ELSE ? END,
			lock_after = ?
		RETURNING attempts, last_at`,
		key, nowMs, limit, cutoff, limit, cutoff, limit, nowMs, limit).Scan(&count, &last)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count a login failure: %w", err)
	}
	if count == 1 {
		if err := s.evictFailures(ctx, cutoff); err != nil {
			return 0, time.Time{}, err
		}
	}
	return int(count), fromMillis(last), nil
}

// evictFailures keeps the login_failures table at most s.failureRows rows.
// Attackers trying new addresses and user names add rows at their rate, and
// only the purge, a window on, removed them. Past the bound go first the
// rows whose window is over, then the oldest of those no lockout rests on
// (count at most their limit), a hundredth of the bound at once so that
// the walk is paid once per that many new keys; a lockout goes only when
// every row is one, the oldest first and no more than the bound needs. So
// flooding new keys never unlocks a user or an address locked out: it
// evicts its own rows and the counts of keys not locked out, oldest first.
// A count that is growing (a user guessed at from many addresses) is
// touched by each guess, so pushing it out takes the bound's worth of new
// keys between two guesses.
func (s *DB) evictFailures(ctx context.Context, cutoff int64) error {
	if s.failureRows <= 0 { // no bound (a benchmark's baseline)
		return nil
	}
	var n int
	if err := s.queryRow(ctx, `SELECT count(*) FROM login_failures`).Scan(&n); err != nil {
		return fmt.Errorf("count login failure rows: %w", err)
	}
	need := n - s.failureRows
	if need <= 0 {
		return nil
	}
	batch := max(need, s.failureRows/100)
	classes := []struct {
		where string
		args  []any
		limit int
	}{
		{`last_at <= ?`, []any{cutoff}, batch},
		{`attempts <= lock_after`, nil, batch},
		{`1 = 1`, nil, need},
	}
	deleted := 0
	for _, c := range classes {
		limit := c.limit - deleted
		if limit <= 0 {
			break
		}
		res, err := s.exec(ctx, `DELETE FROM login_failures WHERE name IN (
			SELECT name FROM login_failures WHERE `+c.where+` ORDER BY last_at, name LIMIT ?)`, append(c.args, limit)...)
		if err != nil {
			return fmt.Errorf("evict login failure rows: %w", err)
		}
		m, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("evict login failure rows: %w", err)
		}
		deleted += int(m)
	}
	return nil
}

// Failures implements store.Store.
func (s *DB) Failures(ctx context.Context, since time.Time, keys ...string) (map[string]store.Failure, error) {
	out := make(map[string]store.Failure, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := []any{millis(since)}
	for _, k := range keys {
		args = append(args, k)
	}
	rows, err := s.query(ctx, `SELECT name, attempts, last_at FROM login_failures WHERE last_at > ? AND name IN (?`+
		strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read login failures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var count, last int64
		if err := rows.Scan(&name, &count, &last); err != nil {
			return nil, fmt.Errorf("read login failures: %w", err)
		}
		out[name] = store.Failure{Count: int(count), Last: fromMillis(last)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read login failures: %w", err)
	}
	return out, nil
}

// ForgiveFailure implements store.Store.
func (s *DB) ForgiveFailure(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `UPDATE login_failures SET attempts = attempts - 1 WHERE name = ? AND attempts > 0`, key); err != nil {
		return fmt.Errorf("forgive a login failure: %w", err)
	}
	return nil
}

// ClearFailures implements store.Store.
func (s *DB) ClearFailures(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if _, err := s.exec(ctx, `DELETE FROM login_failures WHERE name = ?`, k); err != nil {
			return fmt.Errorf("clear login failures: %w", err)
		}
	}
	return nil
}

// DeleteFailuresBefore implements store.Store.
func (s *DB) DeleteFailuresBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM login_failures WHERE last_at < ?`, millis(t))
	if err != nil {
		return 0, fmt.Errorf("delete old login failures: %w", err)
	}
	return res.RowsAffected()
}
