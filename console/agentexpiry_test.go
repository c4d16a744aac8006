package console

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"github.com/taskguard/taskguard/internal/testenv"
)

// testClock is a time the test moves (auth.Config.Now).
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// An agent credential stored without an expiry (minted before agent
// credentials expired) gets one credential lifetime when the console
// starts, said once in the log: it keeps working until then and is refused
// from then on — on SQLite and on PostgreSQL.
func TestOldAgentCredentialsExpireAfterUpgrade(t *testing.T) {
	for _, eng := range []struct {
		name string
		db   func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t).NewDatabase(t) }},
	} {
		t.Run(eng.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.DB = eng.db(t)
			cfg.AdminPassword = "upgrade-admin-password"

			// The old way: the credential's record has no expiry.
			st, err := openStore(ctx, dir, cfg.DB, nil)
			if err != nil {
				t.Fatal(err)
			}
			token, err := auth.New(auth.Config{Store: st, AgentTokenTTL: -1}).AgentToken(ctx, "shop-web")
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256([]byte(token))
			if rec, err := st.Token(ctx, d[:]); err != nil || !rec.ExpiresAt.IsZero() {
				t.Fatalf("the old credential's record: %+v, %v; want no expiry", rec, err)
			}
			st.Close()

			clk := &testClock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
			logs := &testenv.SyncBuffer{}
			cfg.Auth.Now = clk.Now
			cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), nil))
			c, err := Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					c.Shutdown(context.Background())
				}
			})
			want := clk.Now().Add(auth.DefaultAgentTokenTTL)
			if got := strings.Count(logs.String(), "agent credentials stored without an expiry now expire"); got != 1 ||
				!strings.Contains(logs.String(), "count=1 expiresAt="+want.Format(time.RFC3339)) {
				t.Errorf("want one log line with count=1 expiresAt=%s:\n%s", want.Format(time.RFC3339), logs)
			}
			rec, err := c.store.Token(ctx, d[:])
			if err != nil || !rec.ExpiresAt.Equal(want) {
				t.Errorf("after the upgrade the credential expires %v (%v), want %v", rec.ExpiresAt, err, want)
			}

			hc := trusting(c.Certificate())
			status := func() int {
				t.Helper()
				req, _ := http.NewRequest("GET", c.URL()+api.PathAgentPolicy+"?container=app&image=redis:7", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if s := status(); s != 200 {
				t.Fatalf("the old credential right after the upgrade: %d, want 200", s)
			}
			clk.Add(auth.DefaultAgentTokenTTL - time.Millisecond)
			if s := status(); s != 200 {
				t.Errorf("the old credential a millisecond before its new expiry: %d, want 200", s)
			}
			clk.Add(time.Millisecond)
			if s := status(); s != 401 {
				t.Errorf("the old credential at its new expiry: %d, want 401", s)
			}

			// A restart finds nothing left to bound, says nothing, and
			// does not push the expiry out. It happens an hour before the
			// expiry: at it, the console's housekeeping, which runs at
			// start, deletes the expired credential (and the check below
			// raced with it).
			clk.Add(-time.Hour)
			stopped = true
			if err := c.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			logs2 := &testenv.SyncBuffer{}
			cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs2, testWriter{t}), nil))
			c2 := start(t, cfg)
			if strings.Contains(logs2.String(), "without an expiry") {
				t.Errorf("the restart bounded credentials again:\n%s", logs2)
			}
			if rec, err := c2.store.Token(ctx, d[:]); err != nil || !rec.ExpiresAt.Equal(want) {
				t.Errorf("after the restart the credential expires %v (%v), want %v", rec.ExpiresAt, err, want)
			}
		})
	}
}
