package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
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

// DefaultAgentTokenTTL is the period of agent credentials unless Config says
// otherwise: a credential minted in one period works until the end of the
// next, so it lives between one and two periods.
const DefaultAgentTokenTTL = 90 * 24 * time.Hour

// DefaultRotationOverlap is how long the older agent credentials of a family
// keep working after a rotation, unless the caller says otherwise.
const DefaultRotationOverlap = 24 * time.Hour

// Config configures an Authenticator. Store is required; the rest has defaults.
type Config struct {
	Store store.Store
	// TokenTTL is the lifetime of user tokens (default DefaultTokenTTL).
	TokenTTL time.Duration
	// AgentTokenTTL is the period of agent credentials (default
	// DefaultAgentTokenTTL); negative means agent credentials never expire.
	AgentTokenTTL time.Duration
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
	agentTTL time.Duration
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
		agentTTL: cfg.AgentTokenTTL,
		cost:     cfg.BcryptCost,
		throttle: newThrottle(cfg.Throttle, cfg.Store),
		now:      cfg.Now,
		sleep:    cfg.Sleep,
	}
	// An unknown user name is checked against this hash, at the same cost
	// as real ones, so it takes as long to refuse as a wrong password.
	a.dummy, _ = HashPassword(rand.Text(), a.cost)
	if a.ttl == 0 {
		a.ttl = DefaultTokenTTL
	}
	switch {
	case a.agentTTL == 0:
		a.agentTTL = DefaultAgentTokenTTL
	case a.agentTTL < 0:
		a.agentTTL = 0 // never expire
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
	// TaskFamily is set for agent credentials: the task family they were
	// minted for. For an agent-role user the server sets it to the family
	// the request acts for, one of TaskFamilies.
	TaskFamily string
	// TaskFamilies are the families an agent-role user is bound to.
	TaskFamilies []string
	// Method is "basic" or "bearer".
	Method string
	// TokenID identifies the bearer token the request came with (TokenID of
	// its digest), so that logout can revoke it; empty for basic auth.
	TokenID string
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

// CreateUser validates and stores a new user with a hashed password. An
// agent-role user must be bound to one or more task families, and only an
// agent-role user may be.
func (a *Authenticator) CreateUser(ctx context.Context, username, password string, role Role, families ...string) error {
	if err := ValidateUsername(username); err != nil {
		return err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	families, err := checkFamilies(role, families)
	if err != nil {
		return err
	}
	hash, err := HashPassword(password, a.cost)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	return a.store.CreateUser(ctx, store.User{
		Username: username, Role: string(role), PasswordHash: hash, TaskFamilies: families, CreatedAt: now, UpdatedAt: now,
	})
}

// checkFamilies validates the task families of a user of role.
func checkFamilies(role Role, families []string) ([]string, error) {
	if role != RoleAgent {
		if len(families) > 0 {
			return nil, fmt.Errorf("%w task families: only agent-role users are bound to task families, not %s", ErrInvalid, role)
		}
		return nil, nil
	}
	if len(families) == 0 {
		return nil, fmt.Errorf("%w task families: an agent-role user must be bound to the task families it defends (--task-family, \"taskFamilies\")", ErrInvalid)
	}
	var out []string
	for _, f := range families {
		if err := ValidateTaskFamily(f); err != nil {
			return nil, err
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) > maxUserFamilies {
		return nil, fmt.Errorf("%w task families: %d, at most %d per user", ErrInvalid, len(out), maxUserFamilies)
	}
	return out, nil
}

// maxUserFamilies bounds the families one agent-role user is bound to.
const maxUserFamilies = 100

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

// Password checks a user name and password coming from source. Every
// attempt is counted in the store before the password is checked (per user
// and address, per user, per address); past a limit the attempt is refused
// with a *ThrottledError without checking, and failures past the first few
// are answered more and more slowly. A disabled user is refused like a wrong
// password.
func (a *Authenticator) Password(ctx context.Context, username, password, source string) (Principal, error) {
	keys := keysFor(username, source)
	wait, n, err := a.throttle.attempt(ctx, keys, a.now())
	if err != nil {
		return Principal{}, err
	}
	if wait > 0 {
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
	if !checkPassword(hash, password) || !known || u.Disabled {
		a.sleep(ctx, a.throttle.delay(n))
		return Principal{}, ErrUnauthorized
	}
	if err := a.throttle.succeed(ctx, keys); err != nil {
		return Principal{}, err
	}
	return userPrincipal(u, "basic"), nil
}

func userPrincipal(u store.User, method string) Principal {
	p := Principal{Subject: u.Username, Role: Role(u.Role), Method: method}
	if p.Role == RoleAgent {
		p.TaskFamilies = u.TaskFamilies
	}
	return p
}

// Bearer checks a token. User tokens act with the user's current role (a
// deleted or disabled user's tokens stop working); agent tokens with the
// agent role. Revoked and expired tokens are refused. Tokens are 256-bit
// random or keyed-hash values, so failures are not throttled: a fleet of
// defenders behind one address must not lock each other out.
func (a *Authenticator) Bearer(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, userTokenPrefix) && !strings.HasPrefix(token, agentTokenPrefix) {
		return Principal{}, ErrUnauthorized
	}
	d := digest(token)
	t, err := a.store.Token(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	if !t.Valid(a.now()) {
		return Principal{}, ErrUnauthorized
	}
	if Role(t.Role) == RoleAgent && t.TaskFamily != "" {
		return Principal{Subject: t.Subject, Role: RoleAgent, TaskFamily: t.TaskFamily, Method: "bearer", TokenID: TokenID(d)}, nil
	}
	u, err := a.store.User(ctx, t.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, ErrUnauthorized
	}
	p := userPrincipal(u, "bearer")
	p.TokenID = TokenID(d)
	return p, nil
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
// policy and post audits as that family, nothing else. The value is a keyed
// hash of the family and the current period (AgentTokenTTL) under a console
// secret kept in the store, so every call for one family in one period, on
// every console replica, returns the same credential (protecting a task
// twice gives the same task definition) and nothing but its digest is
// stored. It works until the end of the next period. A credential that was
// revoked, or cut short by a rotation, is not handed out again: the error
// says to rotate and pass the new value as a secret.
func (a *Authenticator) AgentToken(ctx context.Context, family string) (string, error) {
	if err := ValidateTaskFamily(family); err != nil {
		return "", fmt.Errorf("an agent credential needs the task's family: %w", err)
	}
	key, err := a.store.EnsureSecret(ctx, agentKeyName, []byte(rand.Text()+rand.Text()))
	if err != nil {
		return "", err
	}
	now := a.now().UTC()
	msg := "taskguard agent token\x00" + family
	var expires time.Time
	if a.agentTTL > 0 {
		period := now.UnixMilli() / a.agentTTL.Milliseconds()
		msg += "\x00" + strconv.FormatInt(period, 10)
		expires = time.UnixMilli((period + 2) * a.agentTTL.Milliseconds()).UTC()
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	token := agentTokenPrefix + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	d := digest(token)
	if err := a.store.SaveToken(ctx, store.Token{
		Digest: d, Subject: "agent:" + family, Role: string(RoleAgent), TaskFamily: family, CreatedAt: now, ExpiresAt: expires,
	}); err != nil {
		return "", err
	}
	t, err := a.store.Token(ctx, d)
	if err != nil {
		return "", err
	}
	if !t.RevokedAt.IsZero() {
		return "", fmt.Errorf("%w agent credential: the credential of task family %q for this period was revoked or rotated; "+
			"rotate it (taskguard-console token rotate %s) and give the new value as a secret (agentTokenSecret)", ErrInvalid, family, family)
	}
	return token, nil
}

// IssuedToken is a credential just made: the value, shown once, its ID and
// when it expires (zero: never).
type IssuedToken struct {
	Token     string
	ID        string
	ExpiresAt time.Time
	// OlderExpireAt is, for a rotation, when the family's older credentials stop working.
	OlderExpireAt time.Time
}

// RotateAgentToken mints a new, random agent credential for family, valid
// for one AgentTokenTTL (no expiry when agent credentials do not expire),
// and revokes every other credential of the family from overlap after now
// (those that expire or were revoked sooner keep that time). The revoked
// records stay until they expire, so a period credential is never minted
// again once rotated away. Put the value in the
// family's secret; tasks started from then on use it, and running tasks
// keep the old one until the overlap ends. It returns the new credential
// and how many older ones were cut short.
func (a *Authenticator) RotateAgentToken(ctx context.Context, family string, overlap time.Duration) (IssuedToken, int64, error) {
	if err := ValidateTaskFamily(family); err != nil {
		return IssuedToken{}, 0, err
	}
	if overlap < 0 {
		return IssuedToken{}, 0, fmt.Errorf("%w overlap %s: give 0 (the old credentials stop at once) or a positive duration", ErrInvalid, overlap)
	}
	now := a.now().UTC()
	olderEnd := now.Add(overlap).Truncate(time.Millisecond)
	cut, err := a.store.RevokeTokens(ctx, store.TokenQuery{TaskFamily: family, Role: string(RoleAgent)}, olderEnd)
	if err != nil {
		return IssuedToken{}, 0, err
	}
	token := agentTokenPrefix + rand.Text() + rand.Text()
	var expires time.Time
	if a.agentTTL > 0 {
		expires = now.Add(a.agentTTL).Truncate(time.Millisecond)
	}
	d := digest(token)
	if err := a.store.SaveToken(ctx, store.Token{
		Digest: d, Subject: "agent:" + family, Role: string(RoleAgent), TaskFamily: family, CreatedAt: now, ExpiresAt: expires,
	}); err != nil {
		return IssuedToken{}, 0, err
	}
	return IssuedToken{Token: token, ID: TokenID(d), ExpiresAt: expires, OlderExpireAt: olderEnd}, cut, nil
}

// BoundAgentTokens gives every agent credential stored without an expiry
// (minted before agent credentials expired, or while AgentTokenTTL was
// negative) one AgentTokenTTL from now: a credential stolen long ago stops
// working then, and the families' tasks have a period to move to a rotated
// credential. The console does it each time it starts; it changes nothing
// when agent credentials do not expire (a negative AgentTokenTTL), nor for a
// credential that already expires. It returns how many were given an
// expiry, and that expiry.
func (a *Authenticator) BoundAgentTokens(ctx context.Context) (int64, time.Time, error) {
	if a.agentTTL <= 0 {
		return 0, time.Time{}, nil
	}
	expires := a.now().UTC().Add(a.agentTTL).Truncate(time.Millisecond)
	n, err := a.store.BoundTokens(ctx, store.TokenQuery{Role: string(RoleAgent)}, expires)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("give agent credentials without an expiry one: %w", err)
	}
	return n, expires, nil
}

// TokenID is the public name of a token: the hex SHA-256 digest the store
// keys it by. It reveals nothing of the token, and lists and revocations use it.
func TokenID(digest []byte) string { return hex.EncodeToString(digest) }

// ParseTokenID reads a TokenID back into a digest.
func ParseTokenID(id string) ([]byte, error) {
	d, err := hex.DecodeString(id)
	if err != nil || len(d) != sha256.Size {
		return nil, fmt.Errorf("%w token ID %.80q: want the 64 hex digits that token lists show", ErrInvalid, id)
	}
	return d, nil
}

// RevokeToken revokes the token with that ID; store.ErrNotFound when no such
// token exists (or, with owner set, when it is not owner's).
func (a *Authenticator) RevokeToken(ctx context.Context, id, owner string) error {
	d, err := ParseTokenID(id)
	if err != nil {
		return err
	}
	t, err := a.store.Token(ctx, d)
	if err != nil {
		return err
	}
	if owner != "" && t.Subject != owner {
		return fmt.Errorf("token %s: %w", id, store.ErrNotFound)
	}
	_, err = a.store.RevokeTokens(ctx, store.TokenQuery{Digest: d}, a.now().UTC())
	return err
}

// RevokeBearer revokes the token a principal authenticated with (logout);
// nothing for basic auth.
func (a *Authenticator) RevokeBearer(ctx context.Context, p Principal) error {
	if p.TokenID == "" {
		return nil
	}
	return a.RevokeToken(ctx, p.TokenID, "")
}

// SetPassword replaces a user's password and revokes every token issued to
// them, so a changed password ends the sessions of whoever knew the old one.
func (a *Authenticator) SetPassword(ctx context.Context, username, password string) error {
	hash, err := HashPassword(password, a.cost)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	if err := a.store.SetPassword(ctx, username, hash, now); err != nil {
		return err
	}
	_, err = a.store.RevokeTokens(ctx, store.TokenQuery{Subject: username}, now)
	return err
}

// CheckPassword reports whether password is username's (for a user changing
// their own password), without counting toward the slow-down.
func (a *Authenticator) CheckPassword(ctx context.Context, username, password string) (bool, error) {
	u, err := a.store.User(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		checkPassword(a.dummy, password)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return checkPassword(u.PasswordHash, password), nil
}

// UserChange is what UpdateUser changes; nil fields are kept.
type UserChange struct {
	Role         *Role
	TaskFamilies *[]string
	Disabled     *bool
}

// UpdateUser changes a user's role, task families or disabled flag.
// Disabling a user revokes their tokens.
func (a *Authenticator) UpdateUser(ctx context.Context, username string, c UserChange) (store.User, error) {
	u, err := a.store.User(ctx, username)
	if err != nil {
		return store.User{}, err
	}
	role := Role(u.Role)
	if c.Role != nil {
		if role, err = ParseRole(string(*c.Role)); err != nil {
			return store.User{}, err
		}
	}
	fams := u.TaskFamilies
	if c.TaskFamilies != nil {
		fams = *c.TaskFamilies
	}
	if role != RoleAgent && c.TaskFamilies == nil {
		fams = nil
	}
	if fams, err = checkFamilies(role, fams); err != nil {
		return store.User{}, err
	}
	u.Role, u.TaskFamilies = string(role), fams
	if c.Disabled != nil {
		u.Disabled = *c.Disabled
	}
	now := a.now().UTC()
	u.UpdatedAt = now
	if err := a.store.UpdateUser(ctx, u); err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		if _, err := a.store.RevokeTokens(ctx, store.TokenQuery{Subject: username}, now); err != nil {
			return store.User{}, err
		}
	}
	return u, nil
}

// DeleteExpiredFailures forgets login-failure counts past the window.
func (a *Authenticator) DeleteExpiredFailures(ctx context.Context) (int64, error) {
	return a.store.DeleteFailuresBefore(ctx, a.now().Add(-a.throttle.cfg.Window))
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
