package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
)

// Two console replicas on one PostgreSQL share the login-failure counts: 150
// parallel wrong passwords for one user, spread over both, get at most 20
// answers of 401 between them, the rest 429.
func TestReplicasShareThrottle(t *testing.T) {
	cluster := pgtest.Start(t)
	dbURL := cluster.NewDatabase(t)
	var consoles []*Console
	for range 2 {
		cfg := testConfig(t, t.TempDir())
		cfg.DB = dbURL
		cfg.AdminPassword = "replica-admin-password"
		consoles = append(consoles, start(t, cfg))
	}
	start := make(chan struct{})
	var mu sync.Mutex
	counts := map[int]int{}
	perReplica := [2]map[int]int{{}, {}}
	var wg sync.WaitGroup
	for i := range 150 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := consoles[i%2]
			hc := trusting(c.Certificate())
			req, _ := http.NewRequest("GET", c.URL()+api.PathPolicies, nil)
			req.SetBasicAuth("admin", fmt.Sprintf("wrong-guess-%03d", i))
			<-start
			// A guess that got no answer at all (a TLS handshake past its
			// deadline under -race with 150 at once) says nothing of the
			// throttle: it is sent again, at most twice, and logged.
			status := -1
			for try := 0; try < 3 && status == -1; try++ {
				resp, err := hc.Do(req)
				if err != nil {
					t.Logf("guess %d, try %d: no answer: %v", i, try+1, err)
					continue
				}
				status = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			counts[status]++
			perReplica[i%2][status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("150 parallel wrong passwords over 2 replicas: %d × 401, %d × 429 (replica a %v, replica b %v)",
		counts[401], counts[429], perReplica[0], perReplica[1])
	if counts[401] > 20 || counts[401] < 1 || counts[401]+counts[429] != 150 {
		t.Fatalf("answers %v: want at most 20 × 401 and the rest 429", counts)
	}
	if perReplica[0][429] == 0 || perReplica[1][429] == 0 {
		t.Errorf("one replica never refused: %v %v", perReplica[0], perReplica[1])
	}
}

// The user and token subcommands manage credentials beside a running console.
func TestCredentialCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.AdminPassword = "admin-password"
	c := start(t, cfg)
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := runCommand(t, stdin, append([]string{"--data-dir", dir}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v (%s)", args, err, errOut)
		}
		return out
	}
	pw := strings.TrimSpace(run("", "user", "add", "--role", "ci", "builder"))
	tok, err := client(t, c).Authenticate(ctx, "builder", pw)
	if err != nil {
		t.Fatal(err)
	}
	builderTok := client(t, c, api.WithToken(tok.Token))
	if _, err := builderTok.Policy(ctx); err != nil {
		t.Fatal(err)
	}

	// token list shows it (never its value); token revoke ends it.
	out := run("", "token", "list", "--subject", "builder")
	if strings.Contains(out, tok.Token) || !strings.Contains(out, "builder") {
		t.Fatalf("token list:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("token list --subject builder:\n%s", out)
	}
	id := strings.Fields(lines[1])[0]
	run("", "token", "revoke", id)
	if _, err := builderTok.Policy(ctx); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("a revoked token: %v, want 401", err)
	}

	// disable / enable / passwd / delete.
	run("", "user", "disable", "builder")
	if _, err := client(t, c, api.WithBasicAuth("builder", pw)).Policy(ctx); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("a disabled user: %v", err)
	}
	run("", "user", "enable", "builder")
	run("new-builder-password\n", "user", "passwd", "--password-stdin", "builder")
	if _, err := client(t, c, api.WithBasicAuth("builder", pw)).Policy(ctx); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("the old password: %v", err)
	}
	if _, err := client(t, c, api.WithBasicAuth("builder", "new-builder-password")).Policy(ctx); err != nil {
		t.Errorf("the new password: %v", err)
	}
	if out := run("", "user", "list"); !strings.Contains(out, "enabled") {
		t.Errorf("user list:\n%s", out)
	}
	run("", "user", "delete", "builder")
	if _, err := client(t, c, api.WithBasicAuth("builder", "new-builder-password")).Policy(ctx); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("a deleted user: %v", err)
	}

	// An agent-role user needs its families; update changes them.
	if _, _, err := runCommand(t, "", "--data-dir", dir, "user", "add", "--role", "agent", "def"); err == nil || !strings.Contains(err.Error(), "task famil") {
		t.Errorf("an agent user without --task-family: %v", err)
	}
	run("", "user", "add", "--role", "agent", "--task-family", "shop-web", "def")
	run("", "user", "update", "--task-family", "shop-web,shop-worker", "def")
	if out := run("", "user", "list"); !strings.Contains(out, "shop-web,shop-worker") {
		t.Errorf("user list after update:\n%s", out)
	}

	// token rotate prints the new agent credential alone; it works on the running console.
	newTok := strings.TrimSpace(run("", "token", "rotate", "--overlap", "0s", "shop-api"))
	if !strings.HasPrefix(newTok, "tga_") || strings.ContainsAny(newTok, " \n") {
		t.Fatalf("token rotate printed %q", newTok)
	}
	if _, _, _, err := client(t, c, api.WithToken(newTok)).AgentPolicy(ctx, "", 0); err != nil {
		t.Errorf("the rotated credential: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "revoke", "nothex"}, "invalid token ID"},
		{[]string{"token", "rotate", "../etc"}, "invalid task family"},
		{[]string{"user", "disable", "ghost"}, `no user "ghost"`},
		{[]string{"user", "update", "def"}, "nothing to change"},
	} {
		if _, _, err := runCommand(t, "", append([]string{"--data-dir", dir}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
