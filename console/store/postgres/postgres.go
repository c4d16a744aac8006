package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

// channel is the NOTIFY channel of policy revisions.
const channel = "taskguard_policy"

// DB is a store.Store over a PostgreSQL database.
type DB struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	watch  *revisions
	cancel context.CancelFunc
	done   chan struct{}
}

var _ store.Store = (*DB)(nil)

// Open connects to the database at url (postgres://user@host:port/db?...),
// migrates it and starts listening for policy changes. logger may be nil.
func Open(ctx context.Context, url string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.MaxConns < 20 {
		cfg.MaxConns = 20
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open database %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	d := &DB{pool: pool, log: logger.With("component", "store"), watch: newRevisions(), cancel: cancel, done: make(chan struct{})}
	go d.listen(lctx)
	return d, nil
}

// Close stops listening and closes the pool; policy waiters return.
func (d *DB) Close() error {
	d.cancel()
	<-d.done
	d.pool.Close()
	return nil
}

// listen holds one connection with LISTEN and publishes each revision it is
// told about; after a reconnect it reads the revision, so nothing is missed.
func (d *DB) listen(ctx context.Context) {
	defer close(d.done)
	defer d.watch.close()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("policy change listener lost its connection; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (d *DB) listenOnce(ctx context.Context) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+channel)
	rev, err := d.PolicyRevision(ctx)
	if err != nil {
		return err
	}
	d.watch.set(rev)
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		rev, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			continue
		}
		d.watch.set(rev)
	}
}

// revisions fans the newest known revision out to waiters.
type revisions struct {
	mu      sync.Mutex
	rev     int64
	known   bool
	changed chan struct{}
	closed  chan struct{}
}

func newRevisions() *revisions {
	return &revisions{changed: make(chan struct{}), closed: make(chan struct{})}
}

func (r *revisions) set(rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known && rev <= r.rev {
		return
	}
	r.rev, r.known = rev, true
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *revisions) close() { close(r.closed) }

func (r *revisions) wait(ctx context.Context, rev int64) (int64, error) {
	for {
		r.mu.Lock()
		cur, known, ch := r.rev, r.known, r.changed
		r.mu.Unlock()
		if known && cur > rev {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return rev, ctx.Err()
		case <-r.closed:
			return rev, context.Canceled
		}
	}
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// CreateUser implements store.Store.
func (d *DB) CreateUser(ctx context.Context, u store.User) error {
	_, err := d.pool.Exec(ctx,
		`INSERT INTO users (username, role, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		u.Username, u.Role, u.PasswordHash, millis(u.CreatedAt), millis(u.UpdatedAt))
	if isUnique(err) {
		return fmt.Errorf("user %q: %w", u.Username, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return nil
}

// User implements store.Store.
func (d *DB) User(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(d.pool.QueryRow(ctx,
		`SELECT username, role, password_hash, created_at, updated_at FROM users WHERE username = $1`, username))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("read user %q: %w", username, err)
	}
	return u, nil
}

// Users implements store.Store.
func (d *DB) Users(ctx context.Context) ([]store.User, error) {
	rows, err := d.pool.Query(ctx, `SELECT username, role, password_hash, created_at, updated_at FROM users ORDER BY username`)
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
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetPassword implements store.Store.
func (d *DB) SetPassword(ctx context.Context, username string, hash []byte, now time.Time) error {
	tag, err := d.pool.Exec(ctx, `UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3`, hash, millis(now), username)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	return nil
}

// SaveToken implements store.Store.
func (d *DB) SaveToken(ctx context.Context, t store.Token) error {
	_, err := d.pool.Exec(ctx,
		`INSERT INTO tokens (digest, subject, role, task_family, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
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
	err := d.pool.QueryRow(ctx,
		`SELECT digest, subject, role, task_family, created_at, expires_at FROM tokens WHERE digest = $1`, digest).
		Scan(&t.Digest, &t.Subject, &t.Role, &t.TaskFamily, &created, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
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
	tag, err := d.pool.Exec(ctx, `DELETE FROM tokens WHERE expires_at <> 0 AND expires_at <= $1`, millis(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return tag.RowsAffected(), nil
}

// EnsureSecret implements store.Store.
func (d *DB) EnsureSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := d.pool.Exec(ctx,
		`INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, value, millis(time.Now())); err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	var stored []byte
	if err := d.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&stored); err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, err)
	}
	return stored, nil
}

// Policy implements store.Store.
func (d *DB) Policy(ctx context.Context) (policy.Policy, error) {
	var doc string
	err := d.pool.QueryRow(ctx, `SELECT document FROM policy_revisions ORDER BY revision DESC LIMIT 1`).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return policy.Policy{}, nil
	}
	if err != nil {
		return policy.Policy{}, fmt.Errorf("read policy: %w", err)
	}
	return decodePolicy(doc)
}

// PolicyAt implements store.Store.
func (d *DB) PolicyAt(ctx context.Context, rev int64) (policy.Policy, error) {
	var doc string
	err := d.pool.QueryRow(ctx, `SELECT document FROM policy_revisions WHERE revision = $1`, rev).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return policy.Policy{}, fmt.Errorf("policy revision %d: %w", rev, store.ErrNotFound)
	}
	if err != nil {
		return policy.Policy{}, fmt.Errorf("read policy revision %d: %w", rev, err)
	}
	return decodePolicy(doc)
}

func decodePolicy(doc string) (policy.Policy, error) {
	var p policy.Policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return policy.Policy{}, fmt.Errorf("decode stored policy: %w", err)
	}
	return p, nil
}

// PolicyRevision implements store.Store.
func (d *DB) PolicyRevision(ctx context.Context) (int64, error) {
	var rev *int64
	if err := d.pool.QueryRow(ctx, `SELECT max(revision) FROM policy_revisions`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read policy revision: %w", err)
	}
	if rev == nil {
		return 0, nil
	}
	return *rev, nil
}

// SavePolicy implements store.Store. The NOTIFY is delivered when the
// transaction commits, to every console listening on the database.
func (d *DB) SavePolicy(ctx context.Context, base int64, p policy.Policy, c store.PolicyChange) (int64, error) {
	p.Revision = base + 1
	doc, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var cur *int64
		if err := tx.QueryRow(ctx, `SELECT max(revision) FROM policy_revisions`).Scan(&cur); err != nil {
			return err
		}
		if (cur == nil && base != 0) || (cur != nil && *cur != base) {
			return store.ErrConflict
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO policy_revisions (revision, created_at, actor, action, rule, document) VALUES ($1, $2, $3, $4, $5, $6)`,
			p.Revision, millis(c.Time), c.Actor, c.Action, c.Rule, string(doc)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, strconv.FormatInt(p.Revision, 10))
		return err
	})
	if errors.Is(err, store.ErrConflict) || isUnique(err) {
		return 0, fmt.Errorf("policy is no longer at revision %d: %w", base, store.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	return p.Revision, nil
}

// PolicyChanges implements store.Store.
func (d *DB) PolicyChanges(ctx context.Context, limit int) ([]store.PolicyChange, error) {
	rows, err := d.pool.Query(ctx,
		`SELECT revision, created_at, actor, action, rule FROM policy_revisions ORDER BY revision DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list policy changes: %w", err)
	}
	defer rows.Close()
	var out []store.PolicyChange
	for rows.Next() {
		var c store.PolicyChange
		var at int64
		if err := rows.Scan(&c.Revision, &at, &c.Actor, &c.Action, &c.Rule); err != nil {
			return nil, fmt.Errorf("list policy changes: %w", err)
		}
		c.Time = fromMillis(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policy changes: %w", err)
	}
	return out, nil
}

// WaitPolicy implements store.Store.
func (d *DB) WaitPolicy(ctx context.Context, rev int64) (int64, error) {
	cur, err := d.PolicyRevision(ctx)
	if err != nil || cur != rev {
		return cur, err
	}
	return d.watch.wait(ctx, rev)
}

// InsertAudits implements store.Store: one round trip per batch.
func (d *DB) InsertAudits(ctx context.Context, audits []api.Audit, received time.Time) (int, error) {
	b := &pgx.Batch{}
	for _, a := range audits {
		body, err := json.Marshal(a)
		if err != nil {
			return 0, fmt.Errorf("insert audit %q: %w", a.ID, err)
		}
		b.Queue(`INSERT INTO audits (id, time, received_at, task_family, task_id, container, kind, effect, rule, message, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING`,
			a.ID, millis(a.Time), millis(received), a.TaskFamily, a.TaskID, a.Container, string(a.Kind), string(a.Effect),
			a.Rule, a.Message, string(body))
	}
	n := 0
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		res := tx.SendBatch(ctx, b)
		for range audits {
			tag, err := res.Exec()
			if err != nil {
				res.Close()
				return err
			}
			n += int(tag.RowsAffected())
		}
		return res.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("insert audits: %w", err)
	}
	return n, nil
}

// Audits implements store.Store.
func (d *DB) Audits(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	w := &where{}
	if len(q.Kinds) > 0 {
		kinds := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			kinds[i] = string(k)
		}
		w.add("kind = ANY(?)", kinds)
	}
	w.eq("kind", string(q.Kind))
	if !q.From.IsZero() {
		w.add("time >= ?", q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		w.add("time < ?", q.To.UnixMilli())
	}
	if q.Task != "" {
		w.add("(task_family = ? OR task_id = ?)", q.Task, q.Task)
	}
	w.eq("container", q.Container)
	w.eq("rule", q.Rule)
	w.eq("effect", string(q.Effect))
	if q.Text != "" {
		w.add("strpos(lower(message), lower(?)) > 0", q.Text)
	}
	if q.Cursor != "" {
		t, seq, err := decodeCursor(q.Cursor)
		if err != nil {
			return store.AuditPage{}, err
		}
		w.add("(time < ? OR (time = ? AND seq < ?))", t, t, seq)
	}
	limit := pageSize(q.Limit, store.DefaultAuditPage, store.MaxAuditPage)
	sql, args := w.sql(`SELECT seq, time, body FROM audits`, ` ORDER BY time DESC, seq DESC LIMIT ?`, limit+1)
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("query audits: %w", err)
	}
	defer rows.Close()
	var page store.AuditPage
	var lastSeq, lastTime int64
	for rows.Next() {
		var seq, t int64
		var body string
		if err := rows.Scan(&seq, &t, &body); err != nil {
			return store.AuditPage{}, fmt.Errorf("query audits: %w", err)
		}
		if len(page.Audits) == limit {
			page.Next = encodeCursor(lastTime, lastSeq)
			break
		}
		var a api.Audit
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return store.AuditPage{}, fmt.Errorf("decode stored audit: %w", err)
		}
		page.Audits = append(page.Audits, a)
		lastSeq, lastTime = seq, t
	}
	if err := rows.Err(); err != nil {
		return store.AuditPage{}, fmt.Errorf("query audits: %w", err)
	}
	return page, nil
}

// DeleteAuditsBefore implements store.Store.
func (d *DB) DeleteAuditsBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := d.pool.Exec(ctx, `DELETE FROM audits WHERE time < $1`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete old audits: %w", err)
	}
	return tag.RowsAffected(), nil
}

// SaveScan implements store.Store.
func (d *DB) SaveScan(ctx context.Context, s store.Scan) error {
	_, err := d.pool.Exec(ctx, `INSERT INTO scans (id, received_at, publisher, image, digest, task_family, result, summary, report)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		s.ID, millis(s.ReceivedAt), s.Publisher, s.Image, s.Digest, s.TaskFamily, s.Result,
		string(orNull(s.Summary)), string(orNull(s.Report)))
	if isUnique(err) {
		return fmt.Errorf("scan %q: %w", s.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("save scan %q: %w", s.ID, err)
	}
	return nil
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// Scans implements store.Store.
func (d *DB) Scans(ctx context.Context, q store.ScanQuery) (store.ScanPage, error) {
	w := &where{}
	w.eq("image", q.Image)
	w.eq("result", q.Result)
	if q.Cursor != "" {
		t, seq, err := decodeCursor(q.Cursor)
		if err != nil {
			return store.ScanPage{}, err
		}
		w.add("(received_at < ? OR (received_at = ? AND seq < ?))", t, t, seq)
	}
	limit := pageSize(q.Limit, store.DefaultScanPage, store.MaxScanPage)
	sql, args := w.sql(`SELECT seq, id, received_at, publisher, image, digest, task_family, result, summary FROM scans`,
		` ORDER BY received_at DESC, seq DESC LIMIT ?`, limit+1)
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return store.ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	defer rows.Close()
	var page store.ScanPage
	var lastSeq, lastTime int64
	for rows.Next() {
		var s store.Scan
		var seq, at int64
		var summary string
		if err := rows.Scan(&seq, &s.ID, &at, &s.Publisher, &s.Image, &s.Digest, &s.TaskFamily, &s.Result, &summary); err != nil {
			return store.ScanPage{}, fmt.Errorf("list scans: %w", err)
		}
		if len(page.Scans) == limit {
			page.Next = encodeCursor(lastTime, lastSeq)
			break
		}
		s.ReceivedAt, s.Summary = fromMillis(at), json.RawMessage(summary)
		page.Scans = append(page.Scans, s)
		lastSeq, lastTime = seq, at
	}
	if err := rows.Err(); err != nil {
		return store.ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	return page, nil
}

// Scan implements store.Store.
func (d *DB) Scan(ctx context.Context, id string) (store.Scan, error) {
	var s store.Scan
	var at int64
	var summary, report string
	err := d.pool.QueryRow(ctx, `SELECT id, received_at, publisher, image, digest, task_family, result, summary, report
		FROM scans WHERE id = $1`, id).Scan(&s.ID, &at, &s.Publisher, &s.Image, &s.Digest, &s.TaskFamily, &s.Result, &summary, &report)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("scan %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("read scan %q: %w", id, err)
	}
	s.ReceivedAt, s.Summary, s.Report = fromMillis(at), json.RawMessage(summary), json.RawMessage(report)
	return s, nil
}

// where builds a WHERE clause with "?" placeholders numbered for PostgreSQL.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) eq(col, v string) {
	if v != "" {
		w.add(col+" = ?", v)
	}
}

func (w *where) sql(head, tail string, tailArgs ...any) (string, []any) {
	s := head
	if len(w.conds) > 0 {
		s += " WHERE " + strings.Join(w.conds, " AND ")
	}
	s += tail
	args := append(w.args, tailArgs...)
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String(), args
}

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(s rowScanner) (store.User, error) {
	var u store.User
	var created, updated int64
	if err := s.Scan(&u.Username, &u.Role, &u.PasswordHash, &created, &updated); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromMillis(created), fromMillis(updated)
	return u, nil
}

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

func pageSize(n, def, max int) int {
	switch {
	case n <= 0:
		return def
	case n > max:
		return max
	}
	return n
}

// A cursor is "<unix ms>.<seq>" of the last row of the previous page.
func encodeCursor(t, seq int64) string {
	return strconv.FormatInt(t, 10) + "." + strconv.FormatInt(seq, 10)
}

func decodeCursor(c string) (int64, int64, error) {
	a, b, ok := strings.Cut(c, ".")
	t, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("cursor %q: %w", c, store.ErrBadCursor)
	}
	return t, seq, nil
}
