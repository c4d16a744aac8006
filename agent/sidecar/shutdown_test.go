package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// childEnv makes the test binary run a sidecar (runChild) instead of the
// tests: a real process, stopped with real signals.
const childEnv = "TASKGUARD_SIDECAR_TEST_CHILD"

type childConfig struct {
	URL, Token, CAPEM, Socket, StateDir string
	FlushEvery                          time.Duration
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	m.Run()
}

// runChild is the sidecar process: Run until SIGTERM, as the defender's
// main does (signal.NotifyContext).
func runChild(cfgJSON string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cfg.CAPEM))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := Run(ctx, Options{
		SocketPath: cfg.Socket, StateDir: cfg.StateDir, TaskFamily: testFamily, PolicyWait: 2 * time.Second,
		Console: &Console{BaseURL: cfg.URL, Token: cfg.Token, HTTP: &http.Client{Transport: tr, Timeout: time.Minute}},
		Log:     slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		// A batch of up to 1000: the test's 600 audits stay in memory
		// until the window ends (or SIGTERM).
		Shipper: func(s *Shipper) { s.FlushEvery, s.MaxBatch = cfg.FlushEvery, maxBatchRecords },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// sidecarProcess is a running child.
type sidecarProcess struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *testenv.SyncBuffer
}

func startSidecar(t *testing.T, cc *consoletest.Console, token, dir string, flush time.Duration) *sidecarProcess {
	t.Helper()
	cfg, _ := json.Marshal(childConfig{URL: cc.URL, Token: token, CAPEM: consoleCertPEM(t, cc), Socket: filepath.Join(dir, "s.sock"),
		StateDir: filepath.Join(dir, "state"), FlushEvery: flush})
	os.Remove(filepath.Join(dir, "s.sock"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	p := &sidecarProcess{cmd: cmd, exited: make(chan error, 1), stderr: &testenv.SyncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "s.sock")); return err == nil })
	return p
}

func consoleCertPEM(t *testing.T, cc *consoletest.Console) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cc.DataDir, "tls", "console.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stopLikeECS sends SIGTERM, waits the grace period and then SIGKILLs, as
// ECS stops a task's containers. It returns how long the process took to
// exit and whether it had to be killed.
func (p *sidecarProcess) stopLikeECS(t *testing.T, grace time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Errorf("the sidecar exited with %v after SIGTERM, want 0\n%s", err, p.stderr.String())
		}
		return time.Since(start), false
	case <-time.After(grace):
		p.cmd.Process.Kill()
		err := <-p.exited
		p.exited <- err
		return time.Since(start), true
	}
}

// sendAudits sends n audits with distinct messages over the launcher socket
// and waits until the sidecar has read them all: an inventory sent after
// them on the same connection reaches the console only once every frame
// before it was handled (frames are read in order).
func sendAudits(t *testing.T, cc *consoletest.Console, dir string, n int) map[string]bool {
	t.Helper()
	cl, err := socket.Dial(filepath.Join(dir, "s.sock"), policy.Identity{TaskFamily: testFamily, Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := map[string]bool{}
	batch := make([]api.Audit, n)
	for i := range batch {
		batch[i] = rec(fmt.Sprintf("audit %d of the shutdown test", i))
		ids[batch[i].ID] = true
	}
	if err := cl.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	marker := api.Inventory{TaskID: "t1", Container: "app", Hash: "sha256:marker", Time: time.Now().UTC(),
		Packages: []api.InventoryPackage{{Type: "dpkg", Name: "marker", Version: "1"}}}
	if err := cl.SendInventory(context.Background(), marker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(cc.TaskImages()) == 1 })
	return ids
}

// checkDelivered waits until every sent audit is stored and checks none is
// missing or stored twice.
func checkDelivered(t *testing.T, cc *consoletest.Console, sent map[string]bool) {
	t.Helper()
	got := cc.WaitAudits(60*time.Second, func(a []api.Audit) bool {
		n := 0
		for _, x := range a {
			if sent[x.ID] {
				n++
			}
		}
		return n >= len(sent)
	})
	seen := map[string]int{}
	for _, a := range got {
		if sent[a.ID] {
			seen[a.ID]++
		}
	}
	lost, dup := 0, 0
	for id := range sent {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("%d audits sent, %d stored, %d lost, %d duplicated", len(sent), len(seen), lost, dup)
	if lost != 0 || dup != 0 {
		t.Fatalf("%d lost, %d duplicated; want 0 and 0", lost, dup)
	}
}

// TestSIGTERMFlushesMemoryToSpool: 600 audits wait in the sidecar's memory
// (a one-hour batching window) while the console is away; SIGTERM writes
// them to the spool before the process exits, and the restarted sidecar
// delivers them: none lost, none stored twice.
func TestSIGTERMFlushesMemoryToSpool(t *testing.T) {
	cc := consoletest.Start(t)
	token := cc.AgentToken(testFamily)
	dir := t.TempDir()
	p := startSidecar(t, cc, token, dir, time.Hour)
	sent := sendAudits(t, cc, dir, 600)
	cc.Stop()
	took, killed := p.stopLikeECS(t, 30*time.Second)
	if killed {
		t.Fatalf("the sidecar did not exit within the 30 s grace after SIGTERM; SIGKILLed\n%s", p.stderr.String())
	}
	t.Logf("the sidecar exited %v after SIGTERM", took)
	spooled := 0
	for _, name := range (&Shipper{SpoolDir: filepath.Join(dir, "state", "spool")}).batches() {
		spooled += len(readBatch(filepath.Join(dir, "state", "spool", name)).Audits)
	}
	if spooled != 600 {
		t.Fatalf("the spool holds %d audits after SIGTERM, want 600", spooled)
	}
	cc.Restart()
	startSidecar(t, cc, token, dir, 20*time.Millisecond)
	checkDelivered(t, cc, sent)
}

// TestECSStopSequence: SIGTERM while the console accepts connections but
// never answers (the final delivery hangs), then SIGKILL after ECS's 30 s
// grace: the sidecar bounds its last delivery and exits by itself within
// the grace, with every audit in the spool; the restarted sidecar delivers
// them all once.
func TestECSStopSequence(t *testing.T) {
	cc := consoletest.Start(t)
	token := cc.AgentToken(testFamily)
	dir := t.TempDir()
	p := startSidecar(t, cc, token, dir, time.Hour)
	sent := sendAudits(t, cc, dir, 600)
	cc.Stop()
	// Something holds the console's address and never answers.
	hang, err := net.Listen("tcp", cc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	took, killed := p.stopLikeECS(t, 30*time.Second)
	hang.Close()
	close(held)
	for c := range held {
		c.Close()
	}
	if killed {
		t.Errorf("the sidecar was still running 30 s after SIGTERM and was SIGKILLed\n%s", p.stderr.String())
	} else {
		t.Logf("the sidecar exited %v after SIGTERM, within the 30 s grace", took)
	}
	cc.Restart()
	startSidecar(t, cc, token, dir, 20*time.Millisecond)
	checkDelivered(t, cc, sent)
}
