package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/cli"
	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/program"
	"golang.org/x/crypto/bcrypt"
)

// The README's CI flow runs as written with a user of the least role, ci:
// one `taskguard ci --console` run reads the console's CI rules, publishes
// the scan results and protects the task definition.
func TestCIFlowWithCIRole(t *testing.T) {
	ctx := context.Background()
	c, err := console.Start(ctx, console.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		AdminUser: "admin", AdminPassword: "correct-horse-battery", Auth: auth.Config{BcryptCost: bcrypt.MinCost}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	pool := x509.NewCertPool()
	pool.AddCert(c.Certificate())
	admin, err := api.NewClient(c.URL(), api.WithBasicAuth("admin", "correct-horse-battery"), api.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "ci", Password: "ci-password-1", Role: string(auth.RoleCI)}); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "console.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tg_fargate.json")
	t.Setenv(cli.EnvConsoleUser, "ci")
	t.Setenv(cli.EnvConsolePassword, "ci-password-1")
	cmd := cli.NewRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs([]string{"ci", "--task", "../testdata/taskdef/seeds-sample.json", "--format", "none", "--console", c.URL(),
		"--console-ca", caFile, "--protected-task-output", out})
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(ctx)
	if code := program.Code(err); code != program.ExitOK {
		t.Fatalf("taskguard ci as the ci user: exit %d, %v\n%s", code, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"name": "taskguard-defender"`) {
		t.Fatalf("the protected task: %v\n%s", err, b)
	}
	page, err := admin.Scans(ctx, "", "")
	if err != nil || len(page.Scans) != 1 || page.Scans[0].Publisher != "ci" {
		t.Fatalf("the scan the ci user published: %+v, %v", page.Scans, err)
	}
	// The ci role still has no power over policy or users.
	ciClient, _ := api.NewClient(c.URL(), api.WithBasicAuth("ci", "ci-password-1"), api.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if _, err := ciClient.Users(ctx); !api.IsStatus(err, 403) {
		t.Errorf("the ci user listing users: %v", err)
	}
	if _, err := ciClient.AddCIRule(ctx, policy.CIRule{Name: "x"}); !api.IsStatus(err, 403) {
		t.Errorf("the ci user changing policy: %v", err)
	}
}
