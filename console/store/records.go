package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// ErrConflict means a write was based on a revision that is no longer the
// current one: another writer got there first. Read again and retry.
var ErrConflict = errors.New("changed concurrently")

// ErrBadCursor means a pagination cursor the store did not make.
var ErrBadCursor = errors.New("bad pagination cursor")

// PolicyStore keeps the policy document, one row per revision, so every
// revision and who made it stays readable (the admin audit trail).
type PolicyStore interface {
	// Policy returns the current policy with its revision; an empty policy
	// with revision 0 when none was ever saved.
	Policy(ctx context.Context) (policy.Policy, error)
	// PolicyRevision returns the current revision (0 when none), cheaply.
	PolicyRevision(ctx context.Context) (int64, error)
	// SavePolicy stores p as revision base+1 when the current revision is
	// base, and records c (its Revision and Time are filled in). It returns
	// the new revision, or ErrConflict when the current revision is not base.
	SavePolicy(ctx context.Context, base int64, p policy.Policy, c PolicyChange) (int64, error)
	// PolicyChanges returns the newest changes first, at most limit.
	PolicyChanges(ctx context.Context, limit int) ([]PolicyChange, error)
	// PolicyAt returns the policy as it was at revision rev, or ErrNotFound.
	PolicyAt(ctx context.Context, rev int64) (policy.Policy, error)
	// WaitPolicy blocks until the current revision differs from rev, or ctx
	// ends, and returns the current revision. The wake-up comes through the
	// database, so a change saved by another console process wakes it too.
	WaitPolicy(ctx context.Context, rev int64) (int64, error)
}

// PolicyChange is one entry of the admin audit trail.
type PolicyChange struct {
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
	// Actor is the user (or token subject) who made the change.
	Actor string `json:"actor"`
	// Action says what was done, e.g. "replace runtime rules", "add waf rule".
	Action string `json:"action"`
	// Rule is the rule the change was about, when it was about one.
	Rule string `json:"rule,omitempty"`
}

// AuditStore keeps defender audits.
type AuditStore interface {
	// InsertAudits stores the records whose ID is not stored yet and returns
	// how many it stored; a record with a known ID is skipped, never updated.
	// The batch is stored whole or not at all. Text an engine cannot hold
	// (NUL, invalid UTF-8) is replaced, never a reason to fail.
	InsertAudits(ctx context.Context, audits []api.Audit, received time.Time) (int, error)
	// Audits returns one page of records matching q, newest first.
	Audits(ctx context.Context, q AuditQuery) (AuditPage, error)
	// DeleteAuditsBefore removes records whose time is before t and returns how many.
	DeleteAuditsBefore(ctx context.Context, t time.Time) (int64, error)
}

// AuditQuery filters audits. Zero fields do not filter.
type AuditQuery struct {
	Kinds     []api.AuditKind
	From, To  time.Time // From inclusive, To exclusive
	Task      string    // task family or task ID, exact
	Container string
	Rule      string
	Effect    policy.Effect
	Kind      api.AuditKind // one kind among Kinds
	// Detector keeps the threat audits of one built-in detector (api.Audit.Detector).
	Detector string
	// Text matches a substring of the message, case-insensitively.
	Text string
	// Limit is the page size (1..MaxAuditPage; 0 means DefaultAuditPage).
	Limit int
	// Cursor is AuditPage.Next of the previous page.
	Cursor string
}

// Page sizes of audit queries. A page also stops once its records hold
// MaxAuditPageBytes of stored JSON (Next then continues after the last one),
// so that a page of large records (16 KiB fields) cannot make a read cost
// hundreds of megabytes.
const (
	DefaultAuditPage  = 100
	MaxAuditPage      = 5000
	MaxAuditPageBytes = 8 << 20
)

// AuditPage is one page of audits; Next is empty on the last page.
type AuditPage struct {
	Audits []api.Audit
	Next   string
}

// ScanStore keeps CI scan reports.
type ScanStore interface {
	// SaveScan stores a scan; ErrExists when the ID is taken.
	SaveScan(ctx context.Context, s Scan) error
	// Scans returns scans newest first, without their reports.
	Scans(ctx context.Context, q ScanQuery) (ScanPage, error)
	// Scan returns one scan with its report, or ErrNotFound.
	Scan(ctx context.Context, id string) (Scan, error)
	// DeleteScan removes one scan, or returns ErrNotFound.
	DeleteScan(ctx context.Context, id string) error
}

// Scan is one CI report as the console keeps it. The store does not read the
// report; the summary fields are taken from it by the caller.
type Scan struct {
	ID         string
	ReceivedAt time.Time
	Publisher  string
	Image      string
	Digest     string
	TaskFamily string
	Result     string
	// Summary is the report's summary object, Report the whole report (JSON).
	Summary json.RawMessage
	Report  json.RawMessage
}

// ScanQuery filters scans; zero fields do not filter.
type ScanQuery struct {
	Image  string // exact image name
	Result string
	Limit  int // 1..MaxScanPage, 0 means DefaultScanPage
	Cursor string
}

// Page sizes of scan lists.
const (
	DefaultScanPage = 50
	MaxScanPage     = 500
)

// ScanPage is one page of scans; Next is empty on the last page.
type ScanPage struct {
	Scans []Scan
	Next  string
}
