// Package storetest is the conformance suite every store.Store implementation
// must pass. An implementation's test calls Run with a function that opens a
// fresh, empty store; the SQLite store runs it on a file in t.TempDir(), and a
// PostgreSQL store runs the same suite on its own database.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/store"
)

// Run runs every conformance test. open returns a new, empty store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"DuplicateUser", testDuplicateUser},
		{"UserNotFound", testUserNotFound},
		{"SetPassword", testSetPassword},
		{"Tokens", testTokens},
		{"SaveTokenKeepsFirst", testSaveTokenKeepsFirst},
		{"DeleteExpiredTokens", testDeleteExpiredTokens},
		{"BoundTokens", testBoundTokens},
		{"UserLifecycle", testUserLifecycle},
		{"TokenRevocation", testTokenRevocation},
		{"CountFailureAtomic", testCountFailureAtomic},
		{"Failures", testFailures},
		{"EnsureSecret", testEnsureSecret},
		{"EnsureSecretRace", testEnsureSecretRace},
		{"ConcurrentCreateUser", testConcurrentCreateUser},
		{"PolicyRevisions", testPolicyRevisions},
		{"PolicyConcurrentSave", testPolicyConcurrentSave},
		{"WaitPolicy", testWaitPolicy},
		{"WaitPolicyAhead", testWaitPolicyAhead},
		{"AuditsUnsafeText", testAuditsUnsafeText},
		{"AuditsPageBytes", testAuditsPageBytes},
		{"Audits", testAudits},
		{"AuditsSameTime", testAuditsSameTime},
		{"Scans", testScans},
		{"Inventories", testInventories},
		{"InventoryFamilyCap", testInventoryFamilyCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// base has millisecond precision, the precision every store must keep times at.
var base = time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	if n, err := s.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on an empty store = %d, %v; want 0, nil", n, err)
	}
	if users, err := s.Users(ctx); err != nil || len(users) != 0 {
		t.Fatalf("Users on an empty store = %v, %v; want none", users, err)
	}
	want := []store.User{
		{Username: "zoe", Role: "ci", PasswordHash: []byte("$2a$hash-z"), CreatedAt: base, UpdatedAt: base},
		{Username: "alice", Role: "admin", PasswordHash: []byte("$2a$hash-a"), CreatedAt: base.Add(time.Hour), UpdatedAt: base.Add(2 * time.Hour)},
		{Username: "Bob", Role: "auditor", PasswordHash: []byte("$2a$hash-b"), CreatedAt: base, UpdatedAt: base},
	}
	for _, u := range want {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser(%s): %v", u.Username, err)
		}
	}
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatalf("User(alice): %v", err)
	}
	if !sameUser(got, want[1]) {
		t.Errorf("User(alice) = %+v, want %+v", got, want[1])
	}
	if _, err := s.User(ctx, "ALICE"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(ALICE) error = %v, want ErrNotFound (names are case-sensitive)", err)
	}
	all, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	var names []string
	for _, u := range all {
		names = append(names, u.Username)
	}
	if fmt.Sprint(names) != "[Bob alice zoe]" {
		t.Errorf("Users order = %v, want [Bob alice zoe] (byte order)", names)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 3 {
		t.Errorf("CountUsers = %d, %v; want 3", n, err)
	}
}

func testDuplicateUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := store.User{Username: "dup", Role: "ci", PasswordHash: []byte("h1"), CreatedAt: base, UpdatedAt: base}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = []byte("h2")
	if err := s.CreateUser(ctx, u); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateUser error = %v, want ErrExists", err)
	}
	got, err := s.User(ctx, "dup")
	if err != nil || string(got.PasswordHash) != "h1" {
		t.Fatalf("after a duplicate create, User = %+v, %v; want the first record kept", got, err)
	}
}

func testUserNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(nobody) error = %v, want ErrNotFound", err)
	}
	if err := s.SetPassword(ctx, "nobody", []byte("x"), base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPassword(nobody) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Token(ctx, []byte("no such digest")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Token(unknown) error = %v, want ErrNotFound", err)
	}
}

func testSetPassword(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, store.User{Username: "u", Role: "ci", PasswordHash: []byte("old"), CreatedAt: base, UpdatedAt: base}); err != nil {
		t.Fatal(err)
	}
	later := base.Add(48 * time.Hour)
	if err := s.SetPassword(ctx, "u", []byte("new"), later); err != nil {
		t.Fatal(err)
	}
	got, err := s.User(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.PasswordHash) != "new" || !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(base) {
		t.Errorf("after SetPassword: %+v", got)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := store.Token{Digest: []byte{1, 2, 3, 0, 255}, Subject: "alice", Role: "admin", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	agent := store.Token{Digest: []byte{9, 9}, Subject: "agent:web", Role: "agent", TaskFamily: "web", CreatedAt: base}
	for _, tok := range []store.Token{user, agent} {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatalf("SaveToken(%s): %v", tok.Subject, err)
		}
	}
	for _, want := range []store.Token{user, agent} {
		got, err := s.Token(ctx, want.Digest)
		if err != nil {
			t.Fatalf("Token(%s): %v", want.Subject, err)
		}
		if !bytes.Equal(got.Digest, want.Digest) || got.Subject != want.Subject || got.Role != want.Role ||
			got.TaskFamily != want.TaskFamily || !got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("Token(%s) = %+v, want %+v", want.Subject, got, want)
		}
	}
	got, _ := s.Token(ctx, agent.Digest)
	if !got.ExpiresAt.IsZero() || got.Expired(base.Add(100*365*24*time.Hour)) {
		t.Errorf("a token saved without expiry came back as %+v, want it never to expire", got)
	}
	if _, err := s.Token(ctx, []byte{1, 2, 3, 0}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a digest prefix matched: %v", err)
	}
}

func testSaveTokenKeepsFirst(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := store.Token{Digest: []byte("d"), Subject: "agent:a", Role: "agent", TaskFamily: "a", CreatedAt: base}
	if err := s.SaveToken(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := first
	second.CreatedAt = base.Add(time.Hour)
	if err := s.SaveToken(ctx, second); err != nil {
		t.Fatalf("saving a stored digest again: %v, want nil", err)
	}
	got, err := s.Token(ctx, first.Digest)
	if err != nil || !got.CreatedAt.Equal(base) {
		t.Errorf("Token = %+v, %v; want the first record kept", got, err)
	}
}

func testDeleteExpiredTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	toks := []store.Token{
		{Digest: []byte("expired"), Subject: "a", Role: "ci", CreatedAt: base, ExpiresAt: base.Add(time.Minute)},
		{Digest: []byte("at-now"), Subject: "a", Role: "ci", CreatedAt: base, ExpiresAt: base.Add(time.Hour)},
		{Digest: []byte("valid"), Subject: "a", Role: "ci", CreatedAt: base, ExpiresAt: base.Add(2 * time.Hour)},
		{Digest: []byte("forever"), Subject: "agent:x", Role: "agent", TaskFamily: "x", CreatedAt: base},
	}
	for _, tok := range toks {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpiredTokens(ctx, base.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredTokens = %d, %v; want 2", n, err)
	}
	for _, d := range []string{"valid", "forever"} {
		if _, err := s.Token(ctx, []byte(d)); err != nil {
			t.Errorf("token %q was deleted: %v", d, err)
		}
	}
	for _, d := range []string{"expired", "at-now"} {
		if _, err := s.Token(ctx, []byte(d)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %q survived: %v", d, err)
		}
	}
}

// testBoundTokens: only the matching tokens without an expiry get one, once;
// a token that expires, or another role's, keeps its record.
func testBoundTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	toks := []store.Token{
		{Digest: []byte("old-agent"), Subject: "agent:x", Role: "agent", TaskFamily: "x", CreatedAt: base},
		{Digest: []byte("old-revoked"), Subject: "agent:y", Role: "agent", TaskFamily: "y", CreatedAt: base, RevokedAt: base.Add(time.Hour)},
		{Digest: []byte("new-agent"), Subject: "agent:x", Role: "agent", TaskFamily: "x", CreatedAt: base, ExpiresAt: base.Add(48 * time.Hour)},
		{Digest: []byte("user"), Subject: "alice", Role: "ci", CreatedAt: base},
	}
	for _, tok := range toks {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.BoundTokens(ctx, store.TokenQuery{Role: "agent"}, time.Time{}); err == nil {
		t.Error("BoundTokens with a zero expiry was accepted")
	}
	expires := base.Add(24 * time.Hour)
	n, err := s.BoundTokens(ctx, store.TokenQuery{Role: "agent"}, expires)
	if err != nil || n != 2 {
		t.Fatalf("BoundTokens = %d, %v; want the 2 agent tokens without an expiry", n, err)
	}
	want := map[string]time.Time{"old-agent": expires, "old-revoked": expires, "new-agent": base.Add(48 * time.Hour), "user": {}}
	for d, exp := range want {
		got, err := s.Token(ctx, []byte(d))
		if err != nil || !got.ExpiresAt.Equal(exp) {
			t.Errorf("token %q expires %v (%v), want %v", d, got.ExpiresAt, err, exp)
		}
	}
	if got, _ := s.Token(ctx, []byte("old-revoked")); !got.RevokedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("the revocation changed: %v", got.RevokedAt)
	}
	// Again (a restart, another replica): nothing left to change.
	if n, err := s.BoundTokens(ctx, store.TokenQuery{Role: "agent"}, expires.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("second BoundTokens = %d, %v; want 0", n, err)
	}
	if got, _ := s.Token(ctx, []byte("old-agent")); !got.ExpiresAt.Equal(expires) {
		t.Errorf("the second call moved an expiry to %v", got.ExpiresAt)
	}
}

func testEnsureSecret(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.EnsureSecret(ctx, "k", []byte{0, 1, 2})
	if err != nil || !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("first EnsureSecret = %v, %v", got, err)
	}
	got, err = s.EnsureSecret(ctx, "k", []byte{7})
	if err != nil || !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("second EnsureSecret = %v, %v; want the stored value", got, err)
	}
	if got, _ := s.EnsureSecret(ctx, "other", []byte{7}); !bytes.Equal(got, []byte{7}) {
		t.Fatalf("EnsureSecret(other) = %v", got)
	}
}

func testEnsureSecretRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	results := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = s.EnsureSecret(ctx, "race", []byte{byte(i)}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureSecret %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], results[0]) {
			t.Fatalf("racing EnsureSecret calls saw different values: %v", results)
		}
	}
}

func testConcurrentCreateUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateUser(ctx, store.User{Username: "admin", Role: "admin", PasswordHash: []byte{byte(i)}, CreatedAt: base, UpdatedAt: base})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("CreateUser: %v, want nil or ErrExists", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent creates of one name succeeded, want exactly 1", ok)
	}
}

func sameUser(a, b store.User) bool {
	return a.Username == b.Username && a.Role == b.Role && bytes.Equal(a.PasswordHash, b.PasswordHash) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}
