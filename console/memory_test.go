package console

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/internal/testenv"
)

// consoleProcess is the real taskguard-console command in a child process.
type consoleProcess struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	client *http.Client
	exited chan error
}

// startConsoleProcess runs the console command with args (plus a data
// directory and a loopback listener) in a child process and waits until it
// listens. The admin is ops / ops-password-1.
func startConsoleProcess(t *testing.T, dir string, args ...string) *consoleProcess {
	t.Helper()
	argv, _ := json.Marshal(append([]string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--log-format", "json"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TASKGUARD_CONSOLE_TEST_ARGS="+string(argv), EnvAdminUser+"=ops", EnvAdminPassword+"=ops-password-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &consoleProcess{cmd: cmd, dir: dir, exited: make(chan error, 1)}
	urls := make(chan string, 1)
	var logs testenv.SyncBuffer
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "console listening" {
				u, _ := rec["url"].(string)
				urls <- u
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.url = <-urls:
	case err := <-p.exited:
		t.Fatalf("the console exited before listening (%v):\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the console did not start listening in 60 s")
	}
	cert, err := os.ReadFile(filepath.Join(dir, "tls", "console.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	p.client = &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	return p
}

// kill ends the process with SIGKILL (no shutdown at all) and waits for it.
func (p *consoleProcess) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Kill()
	if err, ok := <-p.exited; ok {
		p.exited <- err
	}
}

func (p *consoleProcess) api(t *testing.T, opts ...api.Option) *api.Client {
	t.Helper()
	c, err := api.NewClient(p.url, append([]api.Option{api.WithHTTPClient(p.client)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// peakRSS is the process's high-water resident set size (VmHWM), in bytes.
func (p *consoleProcess) peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// rssBound is the peak resident set size the console must stay under while
// it takes the hostile uploads of TestHostileScanUploadMemory.
const rssBound = 300 << 20

// TestHostileScanUploadMemory sends a real console process the issue's
// report (unknown fields of arrays nested 9,990 deep), the same at 16 MiB,
// a 16 MiB report whose unknown field is kept, reads that one back four
// times at once, and checks the process's peak RSS stays under rssBound.
func TestHostileScanUploadMemory(t *testing.T) {
	if raceEnabled {
		// make test runs this package without -race first; that run checks the bound.
		t.Skip("the race detector's shadow memory multiplies RSS: the bound is checked by the run without -race")
	}
	p := startConsoleProcess(t, t.TempDir())
	ci := p.api(t, api.WithBasicAuth("ops", "ops-password-1"))
	ctx := context.Background()
	base := p.peakRSS(t)

	deep := strings.Repeat("[", 9990) + strings.Repeat("]", 9990)
	issue := `{"schemaVersion":1,"result":"passed"`
	for i := range 5 {
		issue += fmt.Sprintf(`,"x%d":%s`, i, deep)
	}
	issue += "}"
	if _, err := ci.PublishScan(ctx, []byte(issue)); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("the issue's %d-byte report: %v, want 400", len(issue), err)
	}

	big := bytes.Repeat([]byte("["), 8<<20)
	big = append(big, bytes.Repeat([]byte("]"), 8<<20)...)
	hostile := append([]byte(`{"schemaVersion":1,"result":"passed","x":`), big[:16<<20-64]...)
	if _, err := ci.PublishScan(ctx, append(hostile, '}')); err == nil {
		t.Fatal("a 16 MiB report nested 8 million deep was accepted")
	}

	// 16 MiB kept: an unknown field holding a long array of small objects.
	var kept bytes.Buffer
	kept.WriteString(`{"schemaVersion":1,"result":"passed","future":[`)
	for i := 0; kept.Len() < 16<<20-1024; i++ {
		if i > 0 {
			kept.WriteByte(',')
		}
		fmt.Fprintf(&kept, `{"k":%d,"v":"abcdefghijklmnop"}`, i)
	}
	kept.WriteString("]}")
	sum, err := ci.PublishScan(ctx, kept.Bytes())
	if err != nil {
		t.Fatalf("a %d-byte report: %v", kept.Len(), err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, p.url+api.PathScans+"/"+sum.ID, nil)
			req.SetBasicAuth("ops", "ops-password-1")
			resp, err := p.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			n, _ := bufio.NewReader(resp.Body).WriteTo(discard{})
			if resp.StatusCode != 200 || n > int64(kept.Len())+4096 {
				t.Errorf("GET the 16 MiB scan: %d, %d bytes", resp.StatusCode, n)
			}
		})
	}
	wg.Wait()
	peak := p.peakRSS(t)
	t.Logf("console peak RSS: %d MiB at start, %d MiB after the hostile uploads and reads (bound %d MiB)", base>>20, peak>>20, rssBound>>20)
	if peak > rssBound {
		t.Errorf("peak RSS %d MiB, over the bound of %d MiB", peak>>20, rssBound>>20)
	}
	if err := ci.DeleteScan(ctx, sum.ID); err != nil {
		t.Errorf("admin deletes the 16 MiB scan: %v", err)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
