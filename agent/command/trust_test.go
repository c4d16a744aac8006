package command_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// defenderBinary builds taskguard-defender as it is shipped (static) into dir.
func defenderBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "taskguard-defender")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/taskguard-defender")
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build taskguard-defender: %v\n%s", err, out)
	}
	return bin
}

// trustConsole is a real console with its defaults (HTTPS, a self-signed
// certificate made at first start) holding the seeds' runtime rule.
type trustConsole struct {
	c      *console.Console
	client *api.Client
	pem    string
}

const trustAdminPassword = "trust-test-password"

func startTrustConsole(t *testing.T) *trustConsole {
	t.Helper()
	c, err := console.Start(context.Background(), console.Config{
		DataDir:       t.TempDir(),
		Listen:        "127.0.0.1:0",
		AdminUser:     "admin",
		AdminPassword: trustAdminPassword,
		Auth:          auth.Config{BcryptCost: bcrypt.MinCost},
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	cert := c.Certificate()
	if cert == nil || !strings.HasPrefix(c.URL(), "https://") {
		t.Fatalf("the console's default is HTTPS with a self-signed certificate; got %s", c.URL())
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cl, err := api.NewClient(c.URL(), api.WithBasicAuth("admin", trustAdminPassword), api.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddRuntimeRule(context.Background(), policy.RuntimeRule{
		Name:      "seeds",
		Scope:     policy.Scope{Containers: []string{"twistlock-fargate-task"}},
		Processes: policy.ProcessPolicy{Effect: policy.EffectPrevent, Denied: []string{"mkdir"}},
		Network:   policy.NetworkPolicy{Effect: policy.EffectPrevent, DeniedDomains: []string{"yahoo.com"}},
	}); err != nil {
		t.Fatal(err)
	}
	return &trustConsole{c: c, client: cl, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))}
}

// defenderEnv protects the seeds' sample with the console and returns the
// environment of the protected task's defender container.
func (tc *trustConsole) defenderEnv(t *testing.T) map[string]string {
	t.Helper()
	sample, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "taskdef", "seeds-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(tc.c.URL(), "https://")
	out, err := tc.client.ProtectFargate(context.Background(), sample, api.ProtectOptions{ConsoleAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	var td struct {
		Containers []struct {
			Name        string `json:"name"`
			Environment []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"environment"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(out, &td); err != nil {
		t.Fatal(err)
	}
	for _, c := range td.Containers {
		if c.Name != "taskguard-defender" {
			continue
		}
		env := map[string]string{}
		for _, kv := range c.Environment {
			env[kv.Name] = kv.Value
		}
		return env
	}
	t.Fatalf("the protected task has no taskguard-defender container:\n%s", out)
	return nil
}

// sidecarRun is a running sidecar and its combined output.
type sidecarRun struct {
	cmd    *exec.Cmd
	out    *testenv.SyncBuffer
	done   chan error
	socket string
}

// startSidecarEnv runs `taskguard-defender sidecar` with exactly env (and
// only the socket and state paths moved into a temporary folder).
func startSidecarEnv(t *testing.T, bin string, env map[string]string) *sidecarRun {
	t.Helper()
	dir := t.TempDir()
	r := &sidecarRun{out: &testenv.SyncBuffer{}, done: make(chan error, 1), socket: filepath.Join(dir, "defender.sock")}
	r.cmd = exec.Command(bin, "sidecar", "--socket", r.socket, "--state-dir", filepath.Join(dir, "state"))
	r.cmd.Env = []string{}
	for k, v := range env {
		r.cmd.Env = append(r.cmd.Env, k+"="+v)
	}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("sidecar output:\n%s", r.out.String())
		}
	})
	return r
}

// waitOutput polls the sidecar's output until it holds want, the sidecar
// exits, or the deadline passes.
func (r *sidecarRun) waitOutput(t *testing.T, want string, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(r.out.String(), want) {
		select {
		case err := <-r.done:
			r.done <- err
			return strings.Contains(r.out.String(), want)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// policyOverSocket connects as the seeds' app container's launcher and
// returns the first policy the sidecar pushes.
func policyOverSocket(t *testing.T, r *sidecarRun) *policy.Policy {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var cl *socket.Client
	for {
		var err error
		if cl, err = socket.Dial(r.socket, policy.Identity{TaskFamily: "twistlock-fargate-task", Container: "twistlock-fargate-task"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar's socket: %v\n%s", err, r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := make(chan *policy.Policy, 1)
	go func() {
		_ = cl.Policies(func(p *policy.Policy) {
			select {
			case got <- p:
			default:
			}
		})
	}()
	defer cl.Close()
	select {
	case p := <-got:
		t.Logf("the sidecar pushed policy revision %d with %d runtime rule(s)", p.Revision, len(p.Runtime))
		return p
	case <-time.After(time.Until(deadline)):
		t.Fatalf("no policy from the sidecar in 20s; its output:\n%s", r.out.String())
		return nil
	}
}

// TestSidecarTrustsConsoleCAPEM: the default console (HTTPS, self-signed)
// and the sidecar started with exactly the environment of the protected
// defender container, plus the console's certificate in
// TASKGUARD_CONSOLE_CA_PEM: the policy arrives and no TLS error is logged.
// A wrong certificate gives a clear x509 message that names the variable; a
// variable that holds no certificate stops the sidecar at once.
func TestSidecarTrustsConsoleCAPEM(t *testing.T) {
	bin := defenderBinary(t, t.TempDir())
	tc := startTrustConsole(t)
	base := tc.defenderEnv(t)
	for _, k := range []string{"TASKGUARD_CONSOLE", "TASKGUARD_AGENT_TOKEN"} {
		if base[k] == "" {
			t.Fatalf("the protected defender container has no %s: %v", k, base)
		}
	}
	with := func(pemText string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env["TASKGUARD_CONSOLE_CA_PEM"] = pemText
		return env
	}

	syncs := func(t *testing.T, r *sidecarRun) {
		t.Helper()
		p := policyOverSocket(t, r)
		if len(p.Runtime) != 1 || p.Runtime[0].Name != "seeds" {
			t.Fatalf("policy %+v, want the console's seeds rule", p)
		}
		if !r.waitOutput(t, "policy updated", 10*time.Second) {
			t.Errorf("the sidecar did not log the policy update")
		}
		out := r.out.String()
		t.Logf("sidecar output:\n%s", out)
		if strings.Contains(out, "x509") || strings.Contains(out, "tls:") || strings.Contains(out, "policy fetch failed") {
			t.Errorf("the sidecar logged a TLS or fetch error:\n%s", out)
		}
	}

	// Must-show: exactly the environment protect gave the defender
	// container (protect writes the console's certificate into it).
	t.Run("the protected defender's environment", func(t *testing.T) {
		if !strings.Contains(base["TASKGUARD_CONSOLE_CA_PEM"], "-----BEGIN CERTIFICATE-----") {
			names := make([]string, 0, len(base))
			for k := range base {
				names = append(names, k)
			}
			t.Fatalf("protect wrote no TASKGUARD_CONSOLE_CA_PEM into the defender container (it has %v): a defender cannot trust this console", names)
		}
		syncs(t, startSidecarEnv(t, bin, base))
	})

	t.Run("console certificate", func(t *testing.T) {
		syncs(t, startSidecarEnv(t, bin, with(tc.pem)))
	})

	t.Run("wrong certificate", func(t *testing.T) {
		r := startSidecarEnv(t, bin, with(otherCertPEM(t)))
		if !r.waitOutput(t, "policy fetch failed", 20*time.Second) {
			t.Fatalf("no fetch failure logged:\n%s", r.out.String())
		}
		out := r.out.String()
		t.Logf("sidecar with a wrong certificate:\n%s", out)
		for _, want := range []string{"x509: certificate signed by unknown authority", "TASKGUARD_CONSOLE_CA_PEM"} {
			if !strings.Contains(out, want) {
				t.Errorf("the sidecar's log lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, base["TASKGUARD_AGENT_TOKEN"]) {
			t.Error("the agent token reached the log")
		}
	})

	t.Run("no certificate in the variable", func(t *testing.T) {
		r := startSidecarEnv(t, bin, with("not a certificate"))
		select {
		case err := <-r.done:
			r.done <- err
			if err == nil {
				t.Fatal("the sidecar exited 0")
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the sidecar did not stop")
		}
		if out := r.out.String(); !strings.Contains(out, "TASKGUARD_CONSOLE_CA_PEM holds no PEM certificate") {
			t.Errorf("output %q does not name the variable", out)
		}
	})
}

// otherCertPEM is a self-signed certificate for the same addresses as the
// console's, from another key: the console's must not be trusted through it.
func otherCertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not the console"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestDefenderCarriesFallbackRoots: the defender image holds no CA bundle, so
// the binary embeds the public roots (used only where the system has none):
// a console with a publicly signed certificate needs nothing extra.
func TestDefenderCarriesFallbackRoots(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/taskguard-defender")
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), "golang.org/x/crypto/x509roots/fallback\n") {
		t.Fatal("taskguard-defender does not import golang.org/x/crypto/x509roots/fallback")
	}
}
