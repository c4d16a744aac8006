package auth

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/sqlite"
	"golang.org/x/crypto/bcrypt"
)

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRoles(t *testing.T) {
	tests := []struct {
		role Role
		can  []Permission
	}{
		{RoleAdmin, []Permission{PermManageUsers, PermProtect, PermPublishScans, PermRead, PermAgentPolicy, PermAgentAudits, PermEditPolicy, PermAgentInventory, PermDeleteScans}},
		{RoleDefenderManager, []Permission{PermProtect, PermRead}},
		{RoleCI, []Permission{PermPublishScans, PermRead}},
		{RoleAuditor, []Permission{PermRead}},
		{RoleAgent, []Permission{PermAgentPolicy, PermAgentAudits, PermAgentInventory}},
		{Role("root"), nil},
	}
	all := rolePermissions[RoleAdmin]
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			for _, p := range all {
				want := false
				for _, c := range tt.can {
					want = want || c == p
				}
				if got := tt.role.Can(p); got != want {
					t.Errorf("%s.Can(%s) = %v, want %v", tt.role, p, got, want)
				}
			}
		})
	}
	if _, err := ParseRole("root"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "defender-manager") {
		t.Errorf("ParseRole(root) = %v", err)
	}
}

func TestThrottleDelays(t *testing.T) {
	th := newThrottle(ThrottleConfig{FreeFailures: 3, BaseDelay: time.Second, MaxDelay: 5 * time.Second, Lockout: 9, Window: time.Minute})
	now := time.Unix(1000, 0)
	var got []time.Duration
	for range 9 {
		if th.locked("k", now) != 0 {
			t.Fatal("locked too early")
		}
		got = append(got, th.fail("k", now))
	}
	want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	if wait := th.locked("k", now.Add(10*time.Second)); wait != 50*time.Second {
		t.Errorf("locked wait = %v, want 50s", wait)
	}
	if th.locked("other", now) != 0 {
		t.Error("another key is locked")
	}
	if th.locked("k", now.Add(time.Minute)) != 0 {
		t.Error("still locked after the window")
	}
}

func TestThrottleBounded(t *testing.T) {
	th := newThrottle(ThrottleConfig{MaxKeys: 10, Window: time.Minute})
	now := time.Unix(1000, 0)
	for i := range 1000 {
		th.fail(strings.Repeat("x", i), now)
	}
	if len(th.keys) > 10 {
		t.Fatalf("throttle holds %d keys, want at most 10", len(th.keys))
	}
}

func TestAgentToken(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskguard.db")
	a := New(Config{Store: openStore(t, path), BcryptCost: bcrypt.MinCost})
	web1, err := a.AgentToken(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	web2, _ := a.AgentToken(ctx, "web")
	worker, _ := a.AgentToken(ctx, "worker")
	if web1 != web2 {
		t.Error("two credentials for one family: want one per family, reused")
	}
	if web1 == worker {
		t.Error("two families share a credential")
	}
	if !strings.HasPrefix(web1, "tga_") {
		t.Errorf("agent token %q lacks the tga_ prefix", web1)
	}
	// Another Authenticator on the same database (a restart, a replica) mints the same one.
	b := New(Config{Store: openStore(t, path)})
	if again, _ := b.AgentToken(ctx, "web"); again != web1 {
		t.Error("the credential changed across authenticators on one store")
	}
	p, err := b.Bearer(ctx, web1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Role != RoleAgent || p.TaskFamily != "web" || p.Subject != "agent:web" {
		t.Errorf("agent principal = %+v", p)
	}
	// A credential minted on another console's database is worthless here.
	other := New(Config{Store: openStore(t, filepath.Join(t.TempDir(), "other.db"))})
	if _, err := other.Bearer(ctx, web1); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a foreign agent token: %v, want ErrUnauthorized", err)
	}
	if _, err := a.AgentToken(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("AgentToken(\"\") = %v, want ErrInvalid", err)
	}
}

func TestPasswordHashing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "taskguard.db"))
	a := New(Config{Store: st, BcryptCost: bcrypt.MinCost, Sleep: func(context.Context, time.Duration) {}})
	if err := a.CreateUser(ctx, "alice", "correct horse", RoleCI); err != nil {
		t.Fatal(err)
	}
	u, err := st.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(u.PasswordHash), "correct horse") || !strings.HasPrefix(string(u.PasswordHash), "$2a$") {
		t.Fatalf("stored hash %q is not a bcrypt hash", u.PasswordHash)
	}
	if p, err := a.Password(ctx, "alice", "correct horse", "src"); err != nil || p.Role != RoleCI || p.Subject != "alice" {
		t.Fatalf("Password = %+v, %v", p, err)
	}
	for _, tc := range [][2]string{{"alice", "wrong horse"}, {"bob", "correct horse"}, {"alice", ""}} {
		if _, err := a.Password(ctx, tc[0], tc[1], "src"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Password(%q, %q) = %v, want ErrUnauthorized", tc[0], tc[1], err)
		}
	}
	if err := a.CreateUser(ctx, "alice", "another-pass", RoleCI); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate CreateUser = %v, want ErrExists", err)
	}
}
