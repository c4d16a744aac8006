package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"golang.org/x/crypto/bcrypt"
)

// Two console replicas on one PostgreSQL database: a policy change made
// through one reaches a defender long-polling the other.
func TestReplicasOnPostgres(t *testing.T) {
	cluster := pgtest.Start(t)
	dbURL := cluster.NewDatabase(t)
	ctx := context.Background()
	var consoles []*Console
	for range 2 {
		cfg := testConfig(t, t.TempDir())
		cfg.DB = dbURL
		cfg.AdminPassword = "replica-admin-password"
		consoles = append(consoles, start(t, cfg))
	}
	// The agent credential is minted from the shared database's secret, so
	// both replicas accept it.
	st, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	token, err := auth.New(auth.Config{Store: st, BcryptCost: bcrypt.MinCost}).AgentToken(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	admin := client(t, consoles[0], api.WithBasicAuth("admin", "replica-admin-password"))
	defender := client(t, consoles[1], api.WithToken(token))

	_, etag, _, err := defender.AgentPolicy(ctx, "", 0)
	if err != nil || etag != `"0"` {
		t.Fatalf("first fetch: ETag %s, %v", etag, err)
	}
	type got struct {
		p        policy.Policy
		modified bool
		err      error
	}
	done := make(chan got, 1)
	go func() {
		p, _, modified, err := defender.AgentPolicy(ctx, etag, 30*time.Second)
		done <- got{p, modified, err}
	}()
	waitLongPolls(t, consoles[1], "admin", "replica-admin-password", 1)
	changed := time.Now()
	if _, err := admin.AddRuntimeRule(ctx, policy.RuntimeRule{Name: "from-replica-a",
		Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}}}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !r.modified || r.p.Revision != 1 || len(r.p.Runtime) != 1 || r.p.Runtime[0].Name != "from-replica-a" {
		t.Fatalf("the long-poll on replica b got %+v", r)
	}
	if d := time.Since(changed); d > 5*time.Second {
		t.Errorf("the change took %v to reach replica b", d)
	}
	// Both replicas see the same users and audits.
	if _, err := client(t, consoles[1], api.WithBasicAuth("admin", "replica-admin-password")).Users(ctx); err != nil {
		t.Fatalf("the admin made by replica a on replica b: %v", err)
	}
	if _, err := defender.PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{{ID: "r1", Kind: api.AuditDNS, Message: "m"}}}); err != nil {
		t.Fatal(err)
	}
	page, err := admin.RuntimeAudits(ctx, api.AuditQuery{})
	if err != nil || len(page.Audits) != 1 || page.Audits[0].TaskFamily != "web" {
		t.Fatalf("replica a reads the audit posted to b: %+v, %v", page, err)
	}
}

// A shutdown does not wait for long-polls: they answer 304 at once.
func TestShutdownEndsLongPolls(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	cfg.AdminPassword = "admin-password-1"
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	token, err := auth.New(auth.Config{Store: c.store, BcryptCost: bcrypt.MinCost}).AgentToken(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	defender := client(t, c, api.WithToken(token))
	done := make(chan error, 1)
	go func() {
		_, _, modified, err := defender.AgentPolicy(ctx, api.ETag(0), 60*time.Second)
		if err == nil && modified {
			err = errors.New("the long-poll answered 200 without a change")
		}
		done <- err
	}()
	waitLongPolls(t, c, "admin", "admin-password-1", 1)
	start := time.Now()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the long-poll during shutdown: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown waited %v for a long-poll", d)
	}
}

// waitLongPolls waits until n policy long-polls are waiting in console c, as
// its /metrics reports them (read with the admin's Basic credentials).
func waitLongPolls(t *testing.T, c *Console, user, password string, n int) {
	t.Helper()
	want := fmt.Sprintf("taskguard_console_policy_long_polls_waiting %d\n", n)
	hc := &http.Client{Timeout: 10 * time.Second}
	if cert := c.Certificate(); cert != nil {
		hc = trusting(cert)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, err := http.NewRequest("GET", c.URL()+api.PathMetrics, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, password)
		var body []byte
		status := 0
		if resp, err := hc.Do(req); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status == http.StatusOK && strings.Contains(string(body), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d long-polls never waited in %s (status %d)", n, c.URL(), status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
