package console

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/internal/program"
	"golang.org/x/crypto/bcrypt"
)

// TestMain lets a test run the real taskguard-console command in a child
// process (the test binary itself), to send it real signals.
func TestMain(m *testing.M) {
	if args := os.Getenv("TASKGUARD_CONSOLE_TEST_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Args = append([]string{"taskguard-console"}, argv...)
		os.Exit(program.Main(NewCommand()))
	}
	os.Exit(m.Run())
}

func testConfig(t *testing.T, dataDir string) Config {
	return Config{
		DataDir: dataDir,
		Listen:  "127.0.0.1:0",
		Auth:    auth.Config{BcryptCost: bcrypt.MinCost},
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func start(t *testing.T, cfg Config) *Console {
	t.Helper()
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	return c
}

// trusting returns an HTTP client that trusts only cert (no -k).
func trusting(cert *x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func client(t *testing.T, c *Console, opts ...api.Option) *api.Client {
	t.Helper()
	if cert := c.Certificate(); cert != nil {
		opts = append([]api.Option{api.WithHTTPClient(trusting(cert))}, opts...)
	}
	cl, err := api.NewClient(c.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

var generatedPassword = regexp.MustCompile(`with the password:\n\n    (\S+)\n`)

func TestFirstAdminGenerated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	var stderr bytes.Buffer
	cfg.Stderr = &stderr
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := generatedPassword.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no generated password on stderr:\n%s", stderr.String())
	}
	password := m[1]
	if !strings.Contains(stderr.String(), `first admin user "admin"`) || !strings.Contains(stderr.String(), "only this once") {
		t.Errorf("stderr does not explain the password:\n%s", stderr.String())
	}
	tok, err := client(t, c).Authenticate(ctx, "admin", password)
	if err != nil {
		t.Fatalf("the printed password does not work: %v", err)
	}
	users, err := client(t, c, api.WithToken(tok.Token)).Users(ctx)
	if err != nil || len(users) != 1 || users[0].Role != "admin" {
		t.Fatalf("users = %+v, %v", users, err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The next start prints nothing, and the password still works.
	stderr.Reset()
	c = start(t, cfg)
	if stderr.Len() != 0 {
		t.Fatalf("second start printed:\n%s", stderr.String())
	}
	if _, err := client(t, c).Authenticate(ctx, "admin", password); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

func TestFirstAdminFromEnv(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	var stderr, logs bytes.Buffer
	cfg.Stderr, cfg.Logger = &stderr, slog.New(slog.NewTextHandler(&logs, nil))
	cfg.AdminUser, cfg.AdminPassword = "secops", "env-admin-password"
	c := start(t, cfg)
	if stderr.Len() != 0 {
		t.Errorf("stderr with the admin from env:\n%s", stderr.String())
	}
	cl := client(t, c, api.WithBasicAuth("secops", "env-admin-password"))
	users, err := cl.Users(ctx)
	if err != nil || len(users) != 1 || users[0].Username != "secops" || users[0].Role != "admin" {
		t.Fatalf("users = %+v, %v", users, err)
	}
	if strings.Contains(logs.String(), "env-admin-password") {
		t.Errorf("the log holds the password:\n%s", logs.String())
	}

	cfg = testConfig(t, t.TempDir())
	cfg.AdminPassword = "short"
	if _, err := Start(ctx, cfg); err == nil || !strings.Contains(err.Error(), "TASKGUARD_ADMIN_PASSWORD") || !strings.Contains(err.Error(), "8 to 72 bytes") {
		t.Fatalf("a too-short admin password: %v, want an error naming the variable and the rule", err)
	}
}

func TestCertificateKeptAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SANs = []string{"console.test"}
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := c.Certificate()
	pinned := trusting(first)
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c = start(t, cfg)
	if !c.Certificate().Equal(first) {
		t.Fatal("the restarted console serves another certificate")
	}
	// A client that pinned the first start's certificate still connects.
	resp, err := pinned.Get(c.URL() + api.PathPing)
	if err != nil {
		t.Fatalf("pinned client after restart: %v", err)
	}
	resp.Body.Close()
	if err := first.VerifyHostname("console.test"); err != nil {
		t.Errorf("--san console.test: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "console.key")); err != nil {
		t.Errorf("the key is not kept in the data dir: %v", err)
	}
}

func TestInsecureHTTP(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.InsecureHTTP = true
	c := start(t, cfg)
	if !strings.HasPrefix(c.URL(), "http://") || c.Certificate() != nil {
		t.Fatalf("URL %s with --insecure-http", c.URL())
	}
	if err := client(t, c).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg = testConfig(t, t.TempDir())
	cfg.InsecureHTTP, cfg.TLSCert, cfg.TLSKey = true, "a.crt", "a.key"
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Fatalf("--insecure-http with --tls-cert: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	cfg.AdminPassword = "admin-password"
	states := make(chan http.ConnState, 16)
	cfg.connState = func(_ net.Conn, st http.ConnState) {
		select {
		case states <- st:
		default: // later connections (the dial probes below) are not watched
		}
	}
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A request in flight: its body arrives in two halves, with the shutdown between.
	body, w := io.Pipe()
	req, _ := http.NewRequest("POST", c.URL()+api.PathAuthenticate, body)
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := trusting(c.Certificate()).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	io.WriteString(w, `{"username":"admin",`)
	// The server has taken the request: over HTTP/2 (this client's protocol)
	// a connection goes active, then idle once the preface is read, and
	// active again when the server opens the request's stream. A shutdown now
	// waits for it.
	for idle := false; ; {
		select {
		case st := <-states:
			if st == http.StateIdle {
				idle = true
			}
			if st != http.StateActive || !idle {
				continue
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the server never opened the request's stream")
		}
		break
	}

	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(ctx) }()
	addr := c.Addr().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // the listener is closed: shutdown has begun
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stays open after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the request in flight finished", err)
	default:
	}
	io.WriteString(w, `"password":"admin-password"}`)
	w.Close()
	if r := <-done; r.err != nil || r.status != 200 {
		t.Fatalf("the request in flight: %d, %v; want it answered 200", r.status, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestSIGTERM runs the real command in a child process, with the admin from
// the environment, and stops it with SIGTERM.
func TestSIGTERM(t *testing.T) {
	dir := t.TempDir()
	args, _ := json.Marshal([]string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--log-format", "json"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TASKGUARD_CONSOLE_TEST_ARGS="+string(args),
		EnvAdminUser+"=ops", EnvAdminPassword+"=ops-password-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var url string
	var all []string
	for url == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the console exited before listening:\n%s", strings.Join(all, "\n"))
			}
			all = append(all, line)
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "console listening" {
				url, _ = rec["url"].(string)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no \"console listening\" line:\n%s", strings.Join(all, "\n"))
		}
	}
	cert, err := os.ReadFile(filepath.Join(dir, "tls", "console.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	cl, _ := api.NewClient(url, api.WithTLSConfig(&tls.Config{RootCAs: pool}), api.WithBasicAuth("ops", "ops-password-1"))
	if _, err := cl.Users(context.Background()); err != nil {
		t.Fatalf("the admin from the environment: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for line := range lines {
		all = append(all, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, strings.Join(all, "\n"))
	}
	out := strings.Join(all, "\n")
	for _, want := range []string{`"msg":"shutting down: waiting for requests in flight"`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ops-password-1") {
		t.Errorf("the admin password reached the log:\n%s", out)
	}
}

// runCommand runs taskguard-console with args in-process.
func runCommand(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newCommand(func(string) string { return "" })
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestUserCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.AdminPassword = "admin-password"
	c := start(t, cfg) // the CLI works beside a running console

	out, errOut, err := runCommand(t, "", "--data-dir", dir, "user", "add", "--role", "defender-manager", "jenkins")
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(out)
	if len(password) < 20 || strings.ContainsAny(password, " \n") {
		t.Fatalf("stdout %q is not just a generated password", out)
	}
	if !strings.Contains(errOut, `added user "jenkins" with role defender-manager`) {
		t.Errorf("stderr = %q", errOut)
	}
	// Authenticated (not 401) but not allowed to manage users (403).
	_, err = client(t, c, api.WithBasicAuth("jenkins", password)).Users(ctx)
	if !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("jenkins on the running console: %v, want 403", err)
	}

	if out, _, err := runCommand(t, "piped-password\n", "--data-dir", dir, "user", "add", "--role", "ci", "--password-stdin", "builder"); err != nil || out != "" {
		t.Fatalf("--password-stdin: %q, %v", out, err)
	}
	if _, err := client(t, c).Authenticate(ctx, "builder", "piped-password"); err != nil {
		t.Fatalf("the piped password: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "--role", "ci", "jenkins"}, `user "jenkins" already exists`},
		{[]string{"user", "add", "--role", "root", "x"}, `invalid role "root"`},
		{[]string{"user", "add", "x"}, `required flag(s) "role" not set`},
		{[]string{"user", "add", "--role", "ci", "--password-stdin", "y"}, "stdin has no password"},
		{[]string{"user", "add", "--role", "ci", "bad name"}, `invalid username "bad name"`},
	} {
		if _, _, err := runCommand(t, "", append([]string{"--data-dir", dir}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}

	out, _, err = runCommand(t, "", "--data-dir", dir, "user", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"USERNAME", "admin ", "jenkins ", "defender-manager", "builder ", "ci"} {
		if !strings.Contains(out, want) {
			t.Errorf("user list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "$2a$") {
		t.Errorf("user list shows hashes:\n%s", out)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	cmd := newCommand(func(k string) string {
		if k == EnvDataDir {
			return "/from/env"
		}
		return ""
	})
	if got := cmd.PersistentFlags().Lookup("data-dir").DefValue; got != "/from/env" {
		t.Errorf("--data-dir default = %q, want the env value", got)
	}
	cmd = newCommand(func(string) string { return "" })
	for flag, want := range map[string]string{"data-dir": DefaultDataDir, "listen": ":8083", "insecure-http": "false", "sqlite-conns": "8"} {
		f := cmd.Flags().Lookup(flag)
		if f == nil {
			f = cmd.PersistentFlags().Lookup(flag)
		}
		if f == nil || f.DefValue != want {
			t.Errorf("--%s default = %v, want %q", flag, f, want)
		}
	}
	if _, _, err := runCommand(t, "", "--log-format", "xml", "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("bad --log-format: %v", err)
	}
	if _, _, err := runCommand(t, "", "--token-ttl", "-1h", "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--token-ttl") {
		t.Errorf("negative --token-ttl: %v", err)
	}
}

// --sqlite-conns bounds the SQLite store's pool (it was a fixed 8): the
// command refuses a value outside 1 to 64 by name, and the value given
// reaches the pool (database/sql's MaxOpenConnections), 0 in a Config
// meaning the default 8.
func TestSQLiteConns(t *testing.T) {
	for _, bad := range []string{"0", "-1", "65"} {
		_, _, err := runCommand(t, "", "--sqlite-conns", bad, "--data-dir", t.TempDir())
		if want := "--sqlite-conns " + bad + ": give 1 to 64"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--sqlite-conns %s: err = %v, want %q", bad, err, want)
		}
	}
	tests := []struct {
		conns, want int
	}{{0, 8}, {1, 1}, {3, 3}, {64, 64}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.conns), func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.SQLiteConns = tt.conns
			c := start(t, cfg)
			if got := c.store.(interface{ Stats() sql.DBStats }).Stats().MaxOpenConnections; got != tt.want {
				t.Errorf("MaxOpenConnections = %d, want %d", got, tt.want)
			}
		})
	}
	cfg := testConfig(t, t.TempDir())
	cfg.SQLiteConns = 65
	if c, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "SQLite connections 65: give 1 to 64") {
		if c != nil {
			c.Shutdown(context.Background())
		}
		t.Errorf("Start with 65 connections: err = %v", err)
	}
}
