package auth

import (
	"context"
	"errors"
	"fmt"
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
		{RoleAdmin, []Permission{PermManageUsers, PermProtect, PermPublishScans, PermRead, PermAgentPolicy, PermAgentAudits, PermEditPolicy, PermAgentInventory, PermDeleteScans, PermOwnCredentials}},
		{RoleDefenderManager, []Permission{PermProtect, PermRead, PermOwnCredentials}},
		{RoleCI, []Permission{PermPublishScans, PermProtect, PermRead, PermOwnCredentials}},
		{RoleAuditor, []Permission{PermRead, PermOwnCredentials}},
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
	ctx := context.Background()
	th := newThrottle(ThrottleConfig{FreeFailures: 3, BaseDelay: time.Second, MaxDelay: 5 * time.Second, Lockout: 9, Window: time.Minute},
		openStore(t, filepath.Join(t.TempDir(), "t.db")))
	now := time.Unix(1000, 0)
	k := keysFor("alice", "203.0.113.7")
	var got []time.Duration
	for range 9 {
		wait, n, err := th.attempt(ctx, k, now)
		if err != nil || wait != 0 {
			t.Fatalf("refused too early: %v, %v", wait, err)
		}
		got = append(got, th.delay(n))
	}
	want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	// The tenth attempt is refused, and the lockout lasts a window from it.
	if wait, _, _ := th.attempt(ctx, k, now.Add(10*time.Second)); wait != time.Minute {
		t.Errorf("locked wait = %v, want 1m", wait)
	}
	if wait, _, _ := th.attempt(ctx, k, now.Add(20*time.Second)); wait != 50*time.Second {
		t.Errorf("a refused attempt moved the lockout: wait %v, want 50s", wait)
	}
	if wait, _, _ := th.attempt(ctx, keysFor("bob", "203.0.113.7"), now); wait != 0 {
		t.Error("another user from the address is locked")
	}
	if wait, _, _ := th.attempt(ctx, k, now.Add(10*time.Second+time.Minute)); wait != 0 {
		t.Error("still locked after the window")
	}
}

// The per-user count holds across addresses, the per-address count across users.
func TestThrottleUserAndAddress(t *testing.T) {
	ctx := context.Background()
	th := newThrottle(ThrottleConfig{Lockout: 100, UserLockout: 5, AddressLockout: 7, Window: time.Minute},
		openStore(t, filepath.Join(t.TempDir(), "t.db")))
	now := time.Unix(1000, 0)
	for i := range 5 {
		if wait, _, _ := th.attempt(ctx, keysFor("alice", fmt.Sprintf("198.51.100.%d", i)), now); wait != 0 {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if wait, _, _ := th.attempt(ctx, keysFor("alice", "198.51.100.99"), now); wait == 0 {
		t.Error("a sixth address guessing alice's password was not refused")
	}
	for i := range 7 {
		if wait, _, _ := th.attempt(ctx, keysFor(fmt.Sprintf("user%d", i), "203.0.113.9"), now); wait != 0 {
			t.Fatalf("user %d refused", i)
		}
	}
	if wait, _, _ := th.attempt(ctx, keysFor("user99", "203.0.113.9"), now); wait == 0 {
		t.Error("an address trying an eighth user was not refused")
	}
	// User names of any length make keys of one length.
	if k := keysFor(strings.Repeat("x", 1<<16), "a"); len(k.user) > 40 || len(k.pair) > 40 {
		t.Errorf("keys grow with the user name: %d bytes", len(k.user))
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
	for _, bad := range []string{"", "../etc", "my app", strings.Repeat("x", 300)} {
		if _, err := a.AgentToken(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("AgentToken(%.20q) = %v, want ErrInvalid", bad, err)
		}
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
