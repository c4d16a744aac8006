package store

import (
	"context"
	"time"
)

// AuthStore is what package auth keeps beyond users and token records:
// account state, token revocation, and the login-failure counters that every
// console process shares (so N replicas allow no more guesses than one).
type AuthStore interface {
	// UpdateUser changes a user's role, task families and disabled flag (the
	// password has SetPassword); ErrNotFound for no such user.
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser removes a user and every token issued to them; ErrNotFound
	// for no such user.
	DeleteUser(ctx context.Context, username string) error

	// Tokens lists token records matching q, newest first.
	Tokens(ctx context.Context, q TokenQuery) ([]Token, error)
	// RevokeTokens makes the matching tokens revoked from at (now, or a
	// later time for a rotation's overlap); tokens revoked before at, or
	// expiring by then, are left as they are. It returns how many changed. A revoked record is kept until
	// it expires, so a deterministic token minted again stays revoked.
	RevokeTokens(ctx context.Context, q TokenQuery, at time.Time) (int64, error)
	// BoundTokens gives the matching tokens that have no expiry (a zero
	// ExpiresAt: agent credentials minted before they expired) the expiry
	// expires, in one statement, and returns how many changed. Tokens that
	// already expire keep their time, so replicas doing it at once change
	// each token once.
	BoundTokens(ctx context.Context, q TokenQuery, expires time.Time) (int64, error)

	// CountFailure atomically counts one attempt against key and returns the
	// count and the time of the last counted attempt. A count whose last
	// attempt is window or more before now starts again at 1. The count stops
	// at limit+1: attempts past it are not counted and do not move the time,
	// so a lockout ends window after the attempt that caused it. The store
	// keeps a bounded number of counts: when full, it forgets first those
	// whose window is over, then the oldest of those not past their limit,
	// and a count past its limit (a lockout) only when all are.
	CountFailure(ctx context.Context, key string, now time.Time, window time.Duration, limit int) (count int, last time.Time, err error)
	// Failures reads, without counting anything, the counts of keys whose
	// last counted attempt is after since (a count CountFailure with that
	// window would go on from); keys without one are left out.
	Failures(ctx context.Context, since time.Time, keys ...string) (map[string]Failure, error)
	// ForgiveFailure takes one attempt back from key (a login that succeeded).
	ForgiveFailure(ctx context.Context, key string) error
	// ClearFailures forgets the counts of keys.
	ClearFailures(ctx context.Context, keys ...string) error
	// DeleteFailuresBefore forgets counts whose last attempt is before t.
	DeleteFailuresBefore(ctx context.Context, t time.Time) (int64, error)
}

// Failure is the count of attempts against a key.
type Failure struct {
	// Count is how many attempts were counted (at most the limit plus one).
	Count int
	// Last is the time of the last counted attempt.
	Last time.Time
}

// TokenQuery selects token records; zero fields do not filter.
type TokenQuery struct {
	// Digest selects one token.
	Digest []byte
	// Subject selects the tokens of a user, or "agent:<family>".
	Subject string
	// TaskFamily selects the agent tokens of a family.
	TaskFamily string
	// Role selects tokens acting with a role.
	Role string
	// Limit caps a listing (0: 1000).
	Limit int
}
