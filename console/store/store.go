// Package store is the console's persistence seam: one small interface that
// the server, the auth package and the CLI use, with SQLite (the embedded
// default) and PostgreSQL behind it: package sqlstore is the one
// implementation, a database/sql store with a small dialect per engine. It
// runs its versioned migrations when opened and passes the conformance suite
// in package storetest on both engines.
//
// The store holds users, bearer-token records, console secrets, the policy
// with its revisions, defender audits, CI scan reports and the inventories of
// running containers. It never
// sees a raw password or a raw token: callers hand it bcrypt hashes and token
// digests. It does not decide anything (who may log in, when a token is valid):
// that is package auth's job.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors; implementations wrap them so callers can use errors.Is.
var (
	// ErrNotFound means the user, token or secret does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a record with the same key is already stored.
	ErrExists = errors.New("already exists")
)

// Store is what the console persists. Methods are safe for concurrent use, and
// several console processes may share one database (PostgreSQL), so no method
// may rely on state kept in the process.
type Store interface {
	// CreateUser stores a new user; ErrExists when the name is taken.
	CreateUser(ctx context.Context, u User) error
	// User returns the user with that name, or ErrNotFound.
	User(ctx context.Context, username string) (User, error)
	// Users lists every user, ordered by name.
	Users(ctx context.Context) ([]User, error)
	// CountUsers returns how many users exist.
	CountUsers(ctx context.Context) (int, error)
	// SetPassword replaces a user's password hash; ErrNotFound for no such user.
	SetPassword(ctx context.Context, username string, passwordHash []byte, now time.Time) error

	// SaveToken stores a token record keyed by its digest. Saving a digest that
	// is already stored keeps the stored record and returns nil, so minting the
	// same deterministic token twice is harmless.
	SaveToken(ctx context.Context, t Token) error
	// Token returns the record for a token digest, or ErrNotFound. It does not
	// check expiry.
	Token(ctx context.Context, digest []byte) (Token, error)
	// DeleteExpiredTokens removes tokens that expired before now and returns how many.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error)

	// EnsureSecret returns the secret stored under name. When there is none it
	// stores value first; when two callers race, both get the one that won.
	EnsureSecret(ctx context.Context, name string, value []byte) ([]byte, error)

	PolicyStore
	AuditStore
	ScanStore
	InventoryStore

	// Close releases the database.
	Close() error
}

// User is a console account. PasswordHash is a bcrypt hash; it never leaves
// the console (the API's user type has no such field).
type User struct {
	Username     string
	Role         string
	PasswordHash []byte
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Token is the stored record of a bearer token: its SHA-256 digest, never the
// token itself.
type Token struct {
	Digest []byte
	// Subject is the user the token was issued to, or "agent:<family>" for an
	// agent credential.
	Subject string
	// Role is the role the token acts with.
	Role string
	// TaskFamily is the task family an agent token belongs to; empty otherwise.
	TaskFamily string
	CreatedAt  time.Time
	// ExpiresAt is when the token stops working; zero means it does not expire.
	ExpiresAt time.Time
}

// Expired reports whether the token is past its expiry at now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}
