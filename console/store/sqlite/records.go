package sqlite

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
func (d *DB) Policy(ctx context.Context) (policy.Policy, error) {
	var doc string
	err := d.db.QueryRowContext(ctx, `SELECT document FROM policy_revisions ORDER BY revision DESC LIMIT 1`).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := d.db.QueryRowContext(ctx, `SELECT document FROM policy_revisions WHERE revision = ?`, rev).Scan(&doc)
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
func (d *DB) PolicyRevision(ctx context.Context) (int64, error) {
	var rev sql.NullInt64
	if err := d.db.QueryRowContext(ctx, `SELECT max(revision) FROM policy_revisions`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read policy revision: %w", err)
	}
	return rev.Int64, nil
}

// SavePolicy implements store.Store.
func (d *DB) SavePolicy(ctx context.Context, base int64, p policy.Policy, c store.PolicyChange) (int64, error) {
	tx, err := d.db.BeginTx(ctx, nil)
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
	p.Revision = base + 1
	doc, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO policy_revisions (revision, created_at, actor, action, rule, document) VALUES (?, ?, ?, ?, ?, ?)`,
		p.Revision, millis(c.Time), c.Actor, c.Action, c.Rule, string(doc)); err != nil {
		if isConstraint(err) {
			return 0, fmt.Errorf("policy revision %d: %w", p.Revision, store.ErrConflict)
		}
		return 0, fmt.Errorf("save policy: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("save policy: %w", err)
	}
	d.watch.poke()
	return p.Revision, nil
}

// PolicyChanges implements store.Store.
func (d *DB) PolicyChanges(ctx context.Context, limit int) ([]store.PolicyChange, error) {
	rows, err := d.db.QueryContext(ctx,
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

// WaitPolicy implements store.Store. Waiters share one poller that reads the
// revision from the database every pollInterval while anyone waits, so a
// change written by another process is seen within that interval.
func (d *DB) WaitPolicy(ctx context.Context, rev int64) (int64, error) {
	cur, err := d.PolicyRevision(ctx)
	if err != nil || cur != rev {
		return cur, err
	}
	return d.watch.wait(ctx, rev)
}

// InsertAudits implements store.Store.
func (d *DB) InsertAudits(ctx context.Context, audits []api.Audit, received time.Time) (int, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("insert audits: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audits
		(id, time, received_at, task_family, task_id, container, kind, effect, rule, message, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("insert audits: %w", err)
	}
	defer stmt.Close()
	n := 0
	for _, a := range audits {
		body, err := json.Marshal(a)
		if err != nil {
			return 0, fmt.Errorf("insert audit %q: %w", a.ID, err)
		}
		res, err := stmt.ExecContext(ctx, a.ID, millis(a.Time), millis(received), a.TaskFamily, a.TaskID,
			a.Container, string(a.Kind), string(a.Effect), a.Rule, a.Message, string(body))
		if err != nil {
			return 0, fmt.Errorf("insert audit %q: %w", a.ID, err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("insert audits: %w", err)
	}
	return n, nil
}

// Audits implements store.Store.
func (d *DB) Audits(ctx context.Context, q store.AuditQuery) (store.AuditPage, error) {
	where, args, err := auditWhere(q)
	if err != nil {
		return store.AuditPage{}, err
	}
	limit := pageSize(q.Limit, store.DefaultAuditPage, store.MaxAuditPage)
	rows, err := d.db.QueryContext(ctx, `SELECT seq, time, body FROM audits`+where+
		` ORDER BY time DESC, seq DESC LIMIT ?`, append(args, limit+1)...)
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

func auditWhere(q store.AuditQuery) (string, []any, error) {
	var conds []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	if len(q.Kinds) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(q.Kinds)), ", ")
		conds = append(conds, "kind IN ("+ph+")")
		for _, k := range q.Kinds {
			args = append(args, string(k))
		}
	}
	eq("kind", string(q.Kind))
	if !q.From.IsZero() {
		conds = append(conds, "time >= ?")
		args = append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		conds = append(conds, "time < ?")
		args = append(args, q.To.UnixMilli())
	}
	if q.Task != "" {
		conds = append(conds, "(task_family = ? OR task_id = ?)")
		args = append(args, q.Task, q.Task)
	}
	eq("container", q.Container)
	eq("rule", q.Rule)
	eq("effect", string(q.Effect))
	if q.Text != "" {
		conds = append(conds, "instr(lower(message), lower(?)) > 0")
		args = append(args, q.Text)
	}
	if q.Cursor != "" {
		t, seq, err := decodeCursor(q.Cursor)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "(time < ? OR (time = ? AND seq < ?))")
		args = append(args, t, t, seq)
	}
	if len(conds) == 0 {
		return "", args, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// DeleteAuditsBefore implements store.Store.
func (d *DB) DeleteAuditsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM audits WHERE time < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete old audits: %w", err)
	}
	return res.RowsAffected()
}

// SaveScan implements store.Store.
func (d *DB) SaveScan(ctx context.Context, s store.Scan) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO scans
		(id, received_at, publisher, image, digest, task_family, result, summary, report)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, millis(s.ReceivedAt), s.Publisher, s.Image, s.Digest, s.TaskFamily, s.Result,
		string(orNull(s.Summary)), string(orNull(s.Report)))
	if isConstraint(err) {
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
	var conds []string
	var args []any
	if q.Image != "" {
		conds = append(conds, "image = ?")
		args = append(args, q.Image)
	}
	if q.Result != "" {
		conds = append(conds, "result = ?")
		args = append(args, q.Result)
	}
	if q.Cursor != "" {
		t, seq, err := decodeCursor(q.Cursor)
		if err != nil {
			return store.ScanPage{}, err
		}
		conds = append(conds, "(received_at < ? OR (received_at = ? AND seq < ?))")
		args = append(args, t, t, seq)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	limit := pageSize(q.Limit, store.DefaultScanPage, store.MaxScanPage)
	rows, err := d.db.QueryContext(ctx, `SELECT seq, id, received_at, publisher, image, digest, task_family, result, summary
		FROM scans`+where+` ORDER BY received_at DESC, seq DESC LIMIT ?`, append(args, limit+1)...)
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
	err := d.db.QueryRowContext(ctx, `SELECT id, received_at, publisher, image, digest, task_family, result, summary, report
		FROM scans WHERE id = ?`, id).Scan(&s.ID, &at, &s.Publisher, &s.Image, &s.Digest, &s.TaskFamily, &s.Result, &summary, &report)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("scan %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("read scan %q: %w", id, err)
	}
	s.ReceivedAt, s.Summary, s.Report = fromMillis(at), json.RawMessage(summary), json.RawMessage(report)
	return s, nil
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
