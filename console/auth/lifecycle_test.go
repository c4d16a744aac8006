package auth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/store"
	"golang.org/x/crypto/bcrypt"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newAuth(t *testing.T, cfg Config) (*Authenticator, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	if cfg.Store == nil {
		cfg.Store = openStore(t, filepath.Join(t.TempDir(), "taskguard.db"))
	}
	cfg.BcryptCost, cfg.Now, cfg.Sleep = bcrypt.MinCost, c.Now, func(context.Context, time.Duration) {}
	return New(cfg), c
}

func TestUserLifecycle(t *testing.T) {
	ctx := context.Background()
	a, _ := newAuth(t, Config{})
	if err := a.CreateUser(ctx, "alice", "first-password", RoleCI); err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.IssueToken(ctx, Principal{Subject: "alice", Role: RoleCI})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Bearer(ctx, tok)
	if err != nil || p.TokenID == "" {
		t.Fatalf("Bearer = %+v, %v", p, err)
	}
	// Logout revokes the token it came with.
	if err := a.RevokeBearer(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bearer(ctx, tok); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a revoked token: %v, want ErrUnauthorized", err)
	}
	// A password change revokes every token of the user.
	tok2, _, _ := a.IssueToken(ctx, Principal{Subject: "alice", Role: RoleCI})
	if err := a.SetPassword(ctx, "alice", "second-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bearer(ctx, tok2); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a token from before the password change: %v", err)
	}
	if _, err := a.Password(ctx, "alice", "first-password", "src"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("the old password: %v", err)
	}
	if _, err := a.Password(ctx, "alice", "second-password", "src"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	// A disabled user can neither sign in nor use a token.
	tok3, _, _ := a.IssueToken(ctx, Principal{Subject: "alice", Role: RoleCI})
	yes := true
	if _, err := a.UpdateUser(ctx, "alice", UserChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Password(ctx, "alice", "second-password", "src"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a disabled user signed in: %v", err)
	}
	if _, err := a.Bearer(ctx, tok3); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a disabled user's token: %v", err)
	}
	no := false
	if _, err := a.UpdateUser(ctx, "alice", UserChange{Disabled: &no}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Password(ctx, "alice", "second-password", "src"); err != nil {
		t.Errorf("an enabled user: %v", err)
	}
	if _, err := a.Bearer(ctx, tok3); !errors.Is(err, ErrUnauthorized) {
		t.Error("enabling a user brought back the tokens disabling revoked")
	}
	// Agent-role users are bound to families; nobody else is.
	if err := a.CreateUser(ctx, "def", "agent-password", RoleAgent); !errors.Is(err, ErrInvalid) {
		t.Errorf("an agent user without families: %v", err)
	}
	if err := a.CreateUser(ctx, "def", "agent-password", RoleAgent, "web", "../etc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("an agent user with a bad family: %v", err)
	}
	if err := a.CreateUser(ctx, "bob", "bob-password", RoleCI, "web"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a ci user with families: %v", err)
	}
	if err := a.CreateUser(ctx, "def", "agent-password", RoleAgent, "web", "worker", "web"); err != nil {
		t.Fatal(err)
	}
	if p, err := a.Password(ctx, "def", "agent-password", "src"); err != nil || !slices.Equal(p.TaskFamilies, []string{"web", "worker"}) || p.TaskFamily != "" {
		t.Errorf("agent user principal = %+v, %v", p, err)
	}
}

func TestAgentTokenPeriodsAndRotation(t *testing.T) {
	ctx := context.Background()
	ttl := 30 * 24 * time.Hour
	a, c := newAuth(t, Config{AgentTokenTTL: ttl})
	t1, err := a.AgentToken(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if again, _ := a.AgentToken(ctx, "web"); again != t1 {
		t.Error("two credentials for one family in one period")
	}
	st := a.store
	rec, _ := st.Token(ctx, digest(t1))
	if rec.ExpiresAt.Sub(c.Now()) < ttl || rec.ExpiresAt.Sub(c.Now()) > 2*ttl {
		t.Errorf("the credential expires %v, want between one and two periods from now", rec.ExpiresAt)
	}
	// Past its expiry it is refused; by then a new period has a new credential.
	c.Add(rec.ExpiresAt.Sub(c.Now()))
	if _, err := a.Bearer(ctx, t1); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("an expired agent credential: %v", err)
	}
	t2, err := a.AgentToken(ctx, "web")
	if err != nil || t2 == t1 {
		t.Fatalf("the next period's credential: %q, %v", t2, err)
	}
	// Rotation: a new random credential, the old one works through the overlap.
	rot, cut, err := a.RotateAgentToken(ctx, "web", time.Hour)
	if err != nil || cut != 1 || rot.Token == t2 || rot.ID != TokenID(digest(rot.Token)) || !rot.ExpiresAt.Equal(c.Now().Add(ttl)) {
		t.Fatalf("RotateAgentToken = %+v, cut %d, %v", rot, cut, err)
	}
	if p, err := a.Bearer(ctx, rot.Token); err != nil || p.TaskFamily != "web" || p.Role != RoleAgent {
		t.Errorf("the rotated credential: %+v, %v", p, err)
	}
	c.Add(59 * time.Minute)
	if _, err := a.Bearer(ctx, t2); err != nil {
		t.Errorf("the old credential inside the overlap: %v", err)
	}
	c.Add(time.Minute)
	if _, err := a.Bearer(ctx, t2); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("the old credential after the overlap: %v", err)
	}
	// The cut-short period credential is not handed out again.
	if _, err := a.AgentToken(ctx, "web"); !errors.Is(err, ErrInvalid) {
		t.Errorf("AgentToken after a rotation in the same period: %v, want ErrInvalid telling to rotate", err)
	}
	// Purging expired tokens does not bring it back: the revoked record stays until its period ends.
	if _, err := a.DeleteExpiredTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if tk, err := a.AgentToken(ctx, "web"); !errors.Is(err, ErrInvalid) {
		t.Errorf("AgentToken after the purge: %.12q, %v; the rotated-away credential came back", tk, err)
	}
	if _, err := a.Bearer(ctx, t2); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("the rotated-away credential after the purge: %v", err)
	}
	// Revoking by ID.
	if err := a.RevokeToken(ctx, rot.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bearer(ctx, rot.Token); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a revoked agent credential: %v", err)
	}
	if err := a.RevokeToken(ctx, "zz", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("a malformed ID: %v", err)
	}
	if err := a.RevokeToken(ctx, TokenID(digest("tga_nothing")), ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown ID: %v", err)
	}
	// Agent credentials that never expire, when so configured.
	never, _ := newAuth(t, Config{AgentTokenTTL: -1})
	tk, _ := never.AgentToken(ctx, "web")
	if rec, _ := never.store.Token(ctx, digest(tk)); !rec.ExpiresAt.IsZero() {
		t.Errorf("AgentTokenTTL -1: expires %v", rec.ExpiresAt)
	}
}

// BoundAgentTokens gives credentials minted without an expiry one agent
// period, and only agent credentials; with non-expiring agent credentials
// it changes nothing.
func TestBoundAgentTokens(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "taskguard.db"))
	forever, _ := newAuth(t, Config{Store: st, AgentTokenTTL: -1})
	old, err := forever.AgentToken(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := forever.BoundAgentTokens(ctx); n != 0 || err != nil {
		t.Errorf("with AgentTokenTTL < 0: BoundAgentTokens = %d, %v; want 0", n, err)
	}
	ttl := 7 * 24 * time.Hour
	a, c := newAuth(t, Config{Store: st, AgentTokenTTL: ttl})
	user, _, err := a.IssueToken(ctx, Principal{Subject: "alice", Role: RoleCI})
	if err != nil {
		t.Fatal(err)
	}
	userRec, _ := st.Token(ctx, digest(user))
	n, expires, err := a.BoundAgentTokens(ctx)
	if err != nil || n != 1 || !expires.Equal(c.Now().Add(ttl)) {
		t.Fatalf("BoundAgentTokens = %d, %v, %v; want 1 credential bounded to %v", n, expires, err, c.Now().Add(ttl))
	}
	if rec, _ := st.Token(ctx, digest(user)); !rec.ExpiresAt.Equal(userRec.ExpiresAt) {
		t.Errorf("a user token's expiry moved from %v to %v", userRec.ExpiresAt, rec.ExpiresAt)
	}
	c.Add(ttl - time.Millisecond)
	if _, err := a.Bearer(ctx, old); err != nil {
		t.Errorf("the old credential before its new expiry: %v", err)
	}
	c.Add(time.Millisecond)
	if _, err := a.Bearer(ctx, old); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("the old credential at its new expiry: %v, want ErrUnauthorized", err)
	}
}
