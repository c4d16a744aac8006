package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/store"
)

func testUserLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := store.User{Username: "defender-web", Role: "agent", PasswordHash: []byte("$2a$h"), TaskFamilies: []string{"web", "web-canary"}, CreatedAt: base, UpdatedAt: base}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.User(ctx, u.Username)
	if err != nil || !slices.Equal(got.TaskFamilies, u.TaskFamilies) || got.Disabled {
		t.Fatalf("User = %+v, %v; want families %v, enabled", got, err, u.TaskFamilies)
	}
	u.Disabled, u.TaskFamilies, u.Role, u.UpdatedAt = true, []string{"worker"}, "ci", base.Add(time.Hour)
	if err := s.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, _ = s.User(ctx, u.Username)
	if !got.Disabled || !slices.Equal(got.TaskFamilies, []string{"worker"}) || got.Role != "ci" || !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Errorf("after UpdateUser: %+v", got)
	}
	if err := s.UpdateUser(ctx, store.User{Username: "ghost"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(ghost) = %v, want ErrNotFound", err)
	}
	for _, d := range [][]byte{{1}, {2}} {
		if err := s.SaveToken(ctx, store.Token{Digest: d, Subject: u.Username, Role: "ci", CreatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveToken(ctx, store.Token{Digest: []byte{3}, Subject: "other", Role: "ci", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.Username); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, u.Username); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted user is still there: %v", err)
	}
	if _, err := s.Token(ctx, []byte{1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted user's token is still there: %v", err)
	}
	if _, err := s.Token(ctx, []byte{3}); err != nil {
		t.Errorf("another user's token went with the deleted user: %v", err)
	}
	if err := s.DeleteUser(ctx, u.Username); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser twice = %v, want ErrNotFound", err)
	}
}

func testTokenRevocation(t *testing.T, s store.Store) {
	ctx := context.Background()
	toks := []store.Token{
		{Digest: []byte("a1"), Subject: "alice", Role: "admin", CreatedAt: base},
		{Digest: []byte("a2"), Subject: "alice", Role: "admin", CreatedAt: base.Add(time.Minute), ExpiresAt: base.Add(time.Hour)},
		{Digest: []byte("w1"), Subject: "agent:web", Role: "agent", TaskFamily: "web", CreatedAt: base.Add(2 * time.Minute)},
		{Digest: []byte("w2"), Subject: "agent:web", Role: "agent", TaskFamily: "web", CreatedAt: base.Add(3 * time.Minute), ExpiresAt: base.Add(90 * 24 * time.Hour)},
		{Digest: []byte("k1"), Subject: "agent:worker", Role: "agent", TaskFamily: "worker", CreatedAt: base.Add(4 * time.Minute)},
	}
	for _, tk := range toks {
		if err := s.SaveToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Tokens(ctx, store.TokenQuery{Subject: "alice"})
	if err != nil || len(list) != 2 || string(list[0].Digest) != "a2" || string(list[1].Digest) != "a1" {
		t.Fatalf("Tokens(alice) = %+v, %v; want a2, a1", list, err)
	}
	if all, _ := s.Tokens(ctx, store.TokenQuery{}); len(all) != 5 {
		t.Errorf("Tokens() lists %d, want 5", len(all))
	}
	if n, err := s.RevokeTokens(ctx, store.TokenQuery{Digest: []byte("a1")}, base.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("RevokeTokens(a1) = %d, %v", n, err)
	}
	if n, _ := s.RevokeTokens(ctx, store.TokenQuery{Digest: []byte("a1")}, base.Add(2*time.Hour)); n != 0 {
		t.Errorf("revoking a revoked token again counts %d", n)
	}
	tk, err := s.Token(ctx, []byte("a1"))
	if err != nil || !tk.RevokedAt.Equal(base.Add(time.Hour)) || tk.Valid(base.Add(time.Hour)) || !tk.Valid(base) {
		t.Errorf("revoked token = %+v, %v", tk, err)
	}
	// Minting the same digest again keeps it revoked.
	if err := s.SaveToken(ctx, toks[0]); err != nil {
		t.Fatal(err)
	}
	if tk, _ := s.Token(ctx, []byte("a1")); tk.RevokedAt.IsZero() {
		t.Error("saving a revoked digest again un-revoked it")
	}
	// Rotation: the family's tokens are revoked from the end of the overlap;
	// their expiry stays, so the records outlive the overlap.
	overlap := base.Add(24 * time.Hour)
	if n, err := s.RevokeTokens(ctx, store.TokenQuery{TaskFamily: "web"}, overlap); err != nil || n != 2 {
		t.Fatalf("RevokeTokens(web, later) = %d, %v; want 2", n, err)
	}
	for _, d := range []string{"w1", "w2"} {
		tk, _ := s.Token(ctx, []byte(d))
		if !tk.RevokedAt.Equal(overlap) || !tk.Valid(overlap.Add(-time.Millisecond)) || tk.Valid(overlap) {
			t.Errorf("%s: revoked from %v (valid just before: %v), want %v", d, tk.RevokedAt, tk.Valid(overlap.Add(-time.Millisecond)), overlap)
		}
	}
	if w2, _ := s.Token(ctx, []byte("w2")); !w2.ExpiresAt.Equal(toks[3].ExpiresAt) {
		t.Errorf("a scheduled revocation changed the expiry to %v", w2.ExpiresAt)
	}
	if n, _ := s.RevokeTokens(ctx, store.TokenQuery{TaskFamily: "web"}, base.Add(48*time.Hour)); n != 0 {
		t.Errorf("a later revocation moved %d tokens back", n)
	}
	if n, _ := s.RevokeTokens(ctx, store.TokenQuery{Digest: []byte("w1")}, base.Add(time.Hour)); n != 1 {
		t.Errorf("revoking at once a token revoked from later: %d, want 1", n)
	}
	if tk, _ := s.Token(ctx, []byte("k1")); !tk.RevokedAt.IsZero() {
		t.Error("another family's token changed")
	}
	// a2 expires at base+1h: revoking from later leaves it to expire; a1 is already revoked.
	if n, _ := s.RevokeTokens(ctx, store.TokenQuery{Subject: "alice"}, base.Add(2*time.Hour)); n != 0 {
		t.Errorf("revoking alice's tokens after they ended counted %d, want 0", n)
	}
	// From base+30m: a2 is revoked, a1's earlier revocation moves to then too.
	if n, _ := s.RevokeTokens(ctx, store.TokenQuery{Subject: "alice"}, base.Add(30*time.Minute)); n != 2 {
		t.Errorf("revoking alice's tokens from base+30m counted %d, want 2", n)
	}
}

// testCountFailureAtomic: 150 concurrent attempts against one key are
// counted once each, up to limit+1; the lockout does not extend itself; a
// count past the window starts again.
func testCountFailureAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	const limit, n = 10, 150
	window := 10 * time.Minute
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := s.CountFailure(ctx, "u:alice", base.Add(time.Duration(i)*time.Millisecond), window, limit)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			counts[c]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for c := 1; c <= limit; c++ {
		if counts[c] != 1 {
			t.Errorf("count %d was returned %d times, want once (counts %v)", c, counts[c], counts)
		}
	}
	if counts[limit+1] != n-limit {
		t.Errorf("%d attempts saw the lockout count %d, want %d (counts %v)", counts[limit+1], limit+1, n-limit, counts)
	}
	_, last, _ := s.CountFailure(ctx, "u:alice", base.Add(5*time.Minute), window, limit)
	if !last.Before(base.Add(time.Second)) {
		t.Errorf("an attempt during the lockout moved its start to %v", last)
	}
	if c, _, _ := s.CountFailure(ctx, "u:alice", last.Add(window), window, limit); c != 1 {
		t.Errorf("after the window the count is %d, want 1", c)
	}
	if err := s.ForgiveFailure(ctx, "u:alice"); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := s.CountFailure(ctx, "u:alice", last.Add(window+time.Second), window, limit); c != 1 {
		t.Errorf("after a forgiven attempt the count is %d, want 1", c)
	}
	if c, _, _ := s.CountFailure(ctx, "a:203.0.113.7", base, window, limit); c != 1 {
		t.Errorf("another key starts at %d", c)
	}
	if err := s.ClearFailures(ctx, "u:alice"); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := s.CountFailure(ctx, "u:alice", last.Add(window+2*time.Second), window, limit); c != 1 {
		t.Errorf("after ClearFailures the count is %d, want 1", c)
	}
	if n, err := s.DeleteFailuresBefore(ctx, base.Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("DeleteFailuresBefore = %d, %v; want the address key", n, err)
	}
}

// testFailures: Failures reads the counts CountFailure took, only those
// within the window, and counts nothing itself.
func testFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	window := 10 * time.Minute
	for range 3 {
		if _, _, err := s.CountFailure(ctx, "a:one", base, window, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CountFailure(ctx, "u:old", base.Add(-window), window, 2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := s.Failures(ctx, base.Add(-window), "a:one", "u:old", "p:none")
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]store.Failure{"a:one": {Count: 3, Last: base}}; len(got) != 1 || got["a:one"].Count != 3 || !got["a:one"].Last.Equal(base) {
			t.Fatalf("Failures = %v, want %v (the old count and a key never counted left out)", got, want)
		}
	}
	if got, err := s.Failures(ctx, base); err != nil || len(got) != 0 {
		t.Errorf("Failures of no keys = %v, %v", got, err)
	}
	if n, err := s.DeleteFailuresBefore(ctx, base.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("DeleteFailuresBefore = %d, %v; want the two keys counted (Failures adds none)", n, err)
	}
}
