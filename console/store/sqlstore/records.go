package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

// Policy implements store.Store.
func (s *DB) Policy(ctx context.Context) (policy.Policy, error) {
	var doc string
	err := s.queryRow(ctx, `SELECT document FROM policy_revisions ORDER BY revision DESC LIMIT 1`).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return policy.Policy{}, nil
	}
	if err != nil {
		return policy.Policy{}, fmt.Errorf("read policy: %w", err)
	}
	return decodePolicy(doc)
}

// PolicyAt implements store.Store.
func (s *DB) PolicyAt(ctx context.Context, rev int64) (policy.Policy, error) {
	var doc string
	err := s.queryRow(ctx, `SELECT document FROM policy_revisions WHERE revision = ?`, rev).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
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
func (s *DB) PolicyRevision(ctx context.Context) (int64, error) {
	var rev sql.NullInt64
	if err := s.queryRow(ctx, `SELECT max(revision) FROM policy_revisions`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read policy revision: %w", err)
	}
	return rev.Int64, nil
}

// SavePolicy implements store.Store. Other processes hear of the new
// revision when the transaction commits (NOTIFY on PostgreSQL; on SQLite
// they poll while they wait); waiters in this process are woken at once.
func (s *DB) SavePolicy(ctx context.Context, base int64, p policy.Policy, c store.PolicyChange) (int64, error) {
	p.Revision = base + 1
	doc, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	defer tx.Rollback()
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(revision) FROM policy_revisions`).Scan(&cur); err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	if cur.Int64 != base {
		return 0, fmt.Errorf("policy is at revision %d, not %d: %w", cur.Int64, base, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, s.dialect.rebind(
		`INSERT INTO policy_revisions (revision, created_at, actor, action, rule, document) VALUES (?, ?, ?, ?, ?, ?)`),
		p.Revision, millis(c.Time), c.Actor, c.Action, c.Rule, string(doc)); err != nil {
		if s.dialect.isUnique(err) {
			return 0, fmt.Errorf("policy is no longer at revision %d: %w", base, store.ErrConflict)
		}
		return 0, fmt.Errorf("save policy: %w", err)
	}
	if err := s.dialect.notify(ctx, tx, p.Revision); err != nil {
		return 0, fmt.Errorf("save policy: notify: %w", err)
	}
	if err := tx.Commit(); err != nil {
		if s.dialect.isUnique(err) {
			return 0, fmt.Errorf("policy is no longer at revision %d: %w", base, store.ErrConflict)
		}
		return 0, fmt.Errorf("save policy: %w", err)
	}
	s.watch.set(p.Revision)
	return p.Revision, nil
}

// PolicyChanges implements store.Store.
func (s *DB) PolicyChanges(ctx context.Context, limit int) ([]store.PolicyChange, error) {
	rows, err := s.query(ctx,
		`SELECT revision, created_at, actor, action, rule FROM policy_revisions ORDER BY revision DESC LIMIT ?`, limit)
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

// WaitPolicy implements store.Store. It first reads the revision from the
// database and returns it when it differs from rev in either direction (a
// caller ahead of the database, e.g. after a restore, is answered at once);
// then it waits for a revision greater than rev (see revisions).
func (s *DB) WaitPolicy(ctx context.Context, rev int64) (int64, error) {
	cur, err := s.PolicyRevision(ctx)
	if err != nil || cur != rev {
		return cur, err
	}
	return s.watch.wait(ctx, rev)
}

// auditColumns are the columns of one audit row, in insert order.
const auditColumns = 11

// auditChunk is how many rows one INSERT carries (11 parameters each, well
// under both engines' parameter limits).
const auditChunk = 200

// InsertAudits implements store.Store. Text that an engine cannot hold (NUL,
// invalid UTF-8) is replaced before it is stored, the same way on both
// engines (api.Audit.Sanitized), so such a record never fails a batch.
func (s *DB) InsertAudits(ctx context.Context, audits []api.Audit, received time.Time) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("insert audits: %w", err)
	}
	defer tx.Rollback()
	n := 0
	args := make([]any, 0, auditChunk*auditColumns)
	for start := 0; start < len(audits); start += auditChunk {
		chunk := audits[start:min(start+auditChunk, len(audits))]
		args = args[:0]
		for _, a := range chunk {
			a, _ = a.Sanitized(0)
			body, err := json.Marshal(a)
			if err != nil {
				return 0, fmt.Errorf("insert audit %q: %w", a.ID, err)
			}
			args = append(args, a.ID, millis(a.Time), millis(received), a.TaskFamily, a.TaskID,
				a.Container, string(a.Kind), string(a.Effect), a.Rule, a.Message, string(body))
		}
		q := `INSERT INTO audits (id, time, received_at, task_family, task_id, container, kind, effect, rule, message, body) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(chunk)), ", ") +
			` ON CONFLICT (id) DO NOTHING`
		res, err := tx.ExecContext(ctx, s.dialect.rebind(q), args...)
		if err != nil {
			return 0, fmt.Errorf("insert audits: %w", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("insert audits: %w", err)
		}
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("insert audits: %w", err)
	}
	return n, nil
}

// Audits implements store.Store.
func (s *DB) Audits(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	w := &where{}
	if len(q.Kinds) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(q.Kinds)), ", ")
		kinds := make([]any, len(q.Kinds))
		for i, k := range q.Kinds {
			kinds[i] = string(k)
		}
		w.add("kind IN ("+ph+")", kinds...)
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
	if q.Detector != "" {
		// The stored body is encoding/json's compact output, so the field
		// appears exactly so; no column, no migration.
		b, _ := json.Marshal(q.Detector)
		w.add(s.dialect.position+"(body, ?) > 0", `"detector":`+string(b))
	}
	if q.Text != "" {
		w.add(s.dialect.position+"(lower(message), lower(?)) > 0", q.Text)
	}
	if q.Cursor != "" {
		t, seq, err := decodeCursor(q.Cursor)
		if err != nil {
			return store.AuditPage{}, err
		}
		w.add("(time < ? OR (time = ? AND seq < ?))", t, t, seq)
	}
	limit := pageSize(q.Limit, store.DefaultAuditPage, store.MaxAuditPage)
	query, args := w.sql(`SELECT seq, time, body FROM audits`, ` ORDER BY time DESC, seq DESC LIMIT ?`, limit+1)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("query audits: %w", err)
	}
	defer rows.Close()
	var page store.AuditPage
	var lastSeq, lastTime int64
	size := 0
	for rows.Next() {
		var seq, t int64
		var body []byte
		if err := rows.Scan(&seq, &t, &body); err != nil {
			return store.AuditPage{}, fmt.Errorf("query audits: %w", err)
		}
		if len(page.Audits) == limit || (len(page.Audits) > 0 && size+len(body) > store.MaxAuditPageBytes) {
			page.Next = encodeCursor(lastTime, lastSeq)
			break
		}
		size += len(body)
		var a api.Audit
		if err := json.Unmarshal(body, &a); err != nil {
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
func (s *DB) DeleteAuditsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM audits WHERE time < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete old audits: %w", err)
	}
	return res.RowsAffected()
}

// SaveScan implements store.Store.
func (s *DB) SaveScan(ctx context.Context, sc store.Scan) error {
	_, err := s.exec(ctx, `INSERT INTO scans (id, received_at, publisher, image, digest, task_family, result, summary, report)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sc.ID, millis(sc.ReceivedAt), sc.Publisher, sc.Image, sc.Digest, sc.TaskFamily, sc.Result,
		string(orNull(sc.Summary)), string(orNull(sc.Report)))
	if s.dialect.isUnique(err) {
		return fmt.Errorf("scan %q: %w", sc.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("save scan %q: %w", sc.ID, err)
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
func (s *DB) Scans(ctx context.Context, q store.ScanQuery) (store.ScanPage, error) {
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
	query, args := w.sql(`SELECT seq, id, received_at, publisher, image, digest, task_family, result, summary FROM scans`,
		` ORDER BY received_at DESC, seq DESC LIMIT ?`, limit+1)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return store.ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	defer rows.Close()
	var page store.ScanPage
	var lastSeq, lastTime int64
	for rows.Next() {
		var sc store.Scan
		var seq, at int64
		var summary string
		if err := rows.Scan(&seq, &sc.ID, &at, &sc.Publisher, &sc.Image, &sc.Digest, &sc.TaskFamily, &sc.Result, &summary); err != nil {
			return store.ScanPage{}, fmt.Errorf("list scans: %w", err)
		}
		if len(page.Scans) == limit {
			page.Next = encodeCursor(lastTime, lastSeq)
			break
		}
		sc.ReceivedAt, sc.Summary = fromMillis(at), json.RawMessage(summary)
		page.Scans = append(page.Scans, sc)
		lastSeq, lastTime = seq, at
	}
	if err := rows.Err(); err != nil {
		return store.ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	return page, nil
}

// Scan implements store.Store.
func (s *DB) Scan(ctx context.Context, id string) (store.Scan, error) {
	var sc store.Scan
	var at int64
	var summary, report []byte // scanned as bytes: one copy of a report of up to 16 MiB, not two
	err := s.queryRow(ctx, `SELECT id, received_at, publisher, image, digest, task_family, result, summary, report
		FROM scans WHERE id = ?`, id).Scan(&sc.ID, &at, &sc.Publisher, &sc.Image, &sc.Digest, &sc.TaskFamily, &sc.Result, &summary, &report)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("scan %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("read scan %q: %w", id, err)
	}
	sc.ReceivedAt, sc.Summary, sc.Report = fromMillis(at), json.RawMessage(summary), json.RawMessage(report)
	return sc, nil
}

// DeleteScan implements store.Store.
func (s *DB) DeleteScan(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM scans WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete scan %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete scan %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("scan %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// where builds a WHERE clause with "?" placeholders.
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
	q := head
	if len(w.conds) > 0 {
		q += " WHERE " + strings.Join(w.conds, " AND ")
	}
	return q + tail, append(w.args, tailArgs...)
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
