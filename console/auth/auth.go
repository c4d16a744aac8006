package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/store"
)

// ErrUnauthorized means the credentials were missing, wrong, unknown or
// expired. Callers answer 401 and say nothing more: which of these it was is
// not for the caller to know.
var ErrUnauthorized = errors.New("unauthorized")

// ThrottledError means the user and source failed too often; RetryAfter says
// when they may try again. Answer 429 with a Retry-After header.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins: retry in %s", e.RetryAfter.Round(time.Second))
}

// Token prefixes tell a user token from an agent credential at a glance (and
// to secret scanners).
const (
	userTokenPrefix  = "tgu_"
	agentTokenPrefix = "tga_"
	// agentKeyName is the store secret agent credentials are derived from.
	agentKeyName = "agent-token-key-v1"
)

// DefaultTokenTTL is how long a token from Login lives unless Config says otherwise.
const DefaultTokenTTL = time.Hour

// Config configures an Authenticator. Store is required; the rest has defaults.
type Config struct {
	Store store.Store
	// TokenTTL is the lifetime of user tokens (default DefaultTokenTTL).
	TokenTTL time.Duration
	// BcryptCost for new password hashes (default bcrypt.DefaultCost).
	BcryptCost int
	// Throttle sets the slow-down of repeated password failures.
	Throttle ThrottleConfig
	// Now returns the time (default time.Now); tests move it.
	Now func() time.Time
	// Sleep waits d or until ctx ends (default a timer); tests record it.
	Sleep func(ctx context.Context, d time.Duration)
}

// Authenticator checks passwords and tokens and issues tokens.
type Authenticator struct {
	store    store.Store
	ttl      time.Duration
	cost     int
	throttle *throttle
	dummy    []byte
	now      func() time.Time
	sleep    func(context.Context, time.Duration)
}

// New returns an Authenticator over cfg.Store.
func New(cfg Config) *Authenticator {
	a := &Authenticator{
		store:    cfg.Store,
		ttl:      cfg.TokenTTL,
		cost:     cfg.BcryptCost,
		throttle: newThrottle(cfg.Throttle),
		now:      cfg.Now,
		sleep:    cfg.Sleep,
	}
	// An unknown user name is checked against this hash, at the same cost
	// as real ones, so it takes as long to refuse as a wrong password.
	a.dummy, _ = HashPassword(rand.Text(), a.cost)
	if a.ttl == 0 {
		a.ttl = DefaultTokenTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.sleep == nil {
		a.sleep = sleepContext
	}
	return a
}

// Principal is who a request acts as.
type Principal struct {
	// Subject is the user name, or "agent:<family>" for an agent credential.
	Subject string
	Role    Role
	// TaskFamily is set for agent credentials: the task family they were minted for.
	TaskFamily string
	// Method is "basic" or "bearer".
	Method string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// CreateUser validates and stores a new user with a hashed password.
func (a *Authenticator) CreateUser(ctx context.Context, username, password string, role Role) error {
	if err := ValidateUsername(username); err != nil {
		return err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	hash, err := HashPassword(password, a.cost)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	return a.store.CreateUser(ctx, store.User{
		Username: username, Role: string(role), PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	})
}

// Request authenticates r from its Authorization header: Basic (user and
// password) or Bearer (a token). It returns ErrUnauthorized, a
// *ThrottledError, or a store failure.
func (a *Authenticator) Request(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, value, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "basic"):
		user, pw, ok := r.BasicAuth()
		if !ok {
			return Principal{}, ErrUnauthorized
		}
		return a.Password(r.Context(), user, pw, Source(r))
	case strings.EqualFold(scheme, "bearer"):
		return a.Bearer(r.Context(), strings.TrimSpace(value))
	}
	return Principal{}, ErrUnauthorized
}

// Source is the address a request comes from, used to key the slow-down.
func Source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Password checks a user name and password coming from source. Repeated
// failures for the same user and source are answered more and more slowly,
// then refused with a *ThrottledError until the window passes.
func (a *Authenticator) Password(ctx context.Context, username, password, source string) (Principal, error) {
	key := username + "\x00" + source
	if wait := a.throttle.locked(key, a.now()); wait > 0 {
		return Principal{}, &ThrottledError{RetryAfter: wait}
	}
	u, err := a.store.User(ctx, username)
	hash := a.dummy
	known := false
	switch {
	case err == nil:
		hash, known = u.PasswordHash, true
	case !errors.Is(err, store.ErrNotFound):
		return Principal{}, err
	}
	if !checkPassword(hash, password) || !known {
		a.sleep(ctx, a.throttle.fail(key, a.now()))
		return Principal{}, ErrUnauthorized
	}
	a.throttle.succeed(key)
	return Principal{Subject: u.Username, Role: Role(u.Role), Method: "basic"}, nil
}

// Bearer checks a token. User tokens act with the user's current role (a
// deleted user's tokens stop working); agent tokens with the agent role.
// Tokens are 256-bit random or keyed-hash values, so failures are not
// throttled: a fleet of defenders behind one address must not lock each other out.
func (a *Authenticator) Bearer(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, userTokenPrefix) && !strings.HasPrefix(token, agentTokenPrefix) {
		return Principal{}, ErrUnauthorized
	}
	t, err := a.store.Token(ctx, digest(token))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	if t.Expired(a.now()) {
		return Principal{}, ErrUnauthorized
	}
	if Role(t.Role) == RoleAgent && t.TaskFamily != "" {
		return Principal{Subject: t.Subject, Role: RoleAgent, TaskFamily: t.TaskFamily, Method: "bearer"}, nil
	}
	u, err := a.store.User(ctx, t.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{Subject: u.Username, Role: Role(u.Role), Method: "bearer"}, nil
}

// IssueToken returns a new random bearer token for p and when it expires.
func (a *Authenticator) IssueToken(ctx context.Context, p Principal) (string, time.Time, error) {
	token := userTokenPrefix + rand.Text() + rand.Text()
	now := a.now().UTC()
	expires := now.Add(a.ttl).Truncate(time.Millisecond)
	if err := a.store.SaveToken(ctx, store.Token{
		Digest: digest(token), Subject: p.Subject, Role: string(p.Role), CreatedAt: now, ExpiresAt: expires,
	}); err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// AgentToken returns the agent credential of a task family: it may fetch
// policy and post audits as that family, nothing else, and does not expire
// (the defender runs as long as the task definition is used). The value is a
// keyed hash of the family under a console secret kept in the store, so every
// call for one family, on every console replica, returns the same credential
// and nothing but its digest is stored.
func (a *Authenticator) AgentToken(ctx context.Context, family string) (string, error) {
	if err := ValidateTaskFamily(family); err != nil {
		return "", fmt.Errorf("an agent credential needs the task's family: %w", err)
	}
	key, err := a.store.EnsureSecret(ctx, agentKeyName, []byte(rand.Text()+rand.Text()))
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("taskguard agent token\x00" + family))
	token := agentTokenPrefix + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if err := a.store.SaveToken(ctx, store.Token{
		Digest: digest(token), Subject: "agent:" + family, Role: string(RoleAgent), TaskFamily: family, CreatedAt: a.now().UTC(),
	}); err != nil {
		return "", err
	}
	return token, nil
}

// DeleteExpiredTokens removes expired tokens from the store.
func (a *Authenticator) DeleteExpiredTokens(ctx context.Context) (int64, error) {
	return a.store.DeleteExpiredTokens(ctx, a.now())
}

func digest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}

func sleepContext(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
