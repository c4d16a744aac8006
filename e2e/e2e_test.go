package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/miekg/dns"

	"github.com/taskguard/taskguard/cli/localrun"
	"github.com/taskguard/taskguard/cli/localrun/testimage"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/internal/testenv"
)

const (
	appImage      = "localhost/taskguard-e2e/twistlock-fargate-auto:seeds"
	defenderImage = "localhost/taskguard-e2e/defender:e2e"
	adminPassword = "e2e-admin-password"
	family        = "twistlock-fargate-task"
)

// The seeds' audit messages, exactly.
var seedsAudits = []string{
	"/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir test",
	"DNS resolution of suspicious name yahoo.com",
}

// entry.sh is the seeds' sample app.
const entrySh = `#!/bin/sh
mkdir test && echo "mkdir test: created" || echo "mkdir test: refused"
wget -q -T 5 -O - http://yahoo.com/ && echo "yahoo.com: fetched" || echo "yahoo.com: failed"
wget -q -T 5 -O - http://google.com/ && echo "google.com: fetched" || echo "google.com: failed"
sleep 3
`

func requireTools(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, b := range []string{"podman", "runc", "catatonit", "slirp4netns", "dash", "mkdir", "wget", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (scripts/install-deps.sh installs it)", b)
			}
			t.Skipf("needs %s (apt-get install podman runc catatonit slirp4netns busybox-static)", b)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static")
	}
}

// TestSeedsSampleTask is the seeds' runtime scenario end to end (issue 9,
// must-show 1 and 3).
func TestSeedsSampleTask(t *testing.T) {
	requireTools(t)
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Programs, built as users build them.
	bin := filepath.Join(dir, "bin")
	goBuild(t, root, bin, "./cmd/taskguard", "./cmd/taskguard-console")
	taskguard := filepath.Join(bin, "taskguard")

	// The defender image, from the module source.
	defenderTar := filepath.Join(dir, "defender.tar")
	out := run(t, ctx, nil, taskguard, "defender", "image", "--module", root, "--output", defenderTar, "--tag", defenderImage)
	t.Logf("defender image %s", strings.TrimSpace(out))

	// The app image: dash, coreutils' mkdir and GNU wget from this host (a
	// static busybox wget cannot resolve next to a copied glibc: its NSS
	// dlopen of a foreign libc crashes).
	appTar := testimage.Build(t, appImage, testimage.Spec{
		HostBinaries: []string{"dash", "mkdir", "wget"},
		Links:        map[string]string{"/bin/sh": "dash"},
		Files:        map[string]string{"/bin/entry.sh": entrySh},
		Config:       v1.Config{Env: []string{"PATH=/bin"}, WorkingDir: "/tmp"},
	})

	// DNS and web sites, on the host's loopback: the pod reaches them at
	// 10.0.2.2 (slirp4netns allow_host_loopback).
	hits := startWebSites(t)
	startDNS(t, localrun.HostLoopback)

	// A real console, plain HTTP on loopback.
	consoleURL := startConsole(t, ctx, filepath.Join(bin, "taskguard-console"), filepath.Join(dir, "console"))

	// The runtime rule, through the console's policy API.
	rule := `{"name": "seeds", "scope": {"containers": ["twistlock-fargate-task"]},
	  "processes": {"effect": "prevent", "denied": ["mkdir"]},
	  "network": {"effect": "prevent", "deniedDomains": ["yahoo.com"]}}`
	call(t, ctx, http.MethodPost, consoleURL+api.PathRuntimePolicy, rule, http.StatusOK, http.StatusCreated)

	// The seeds' sample task with our image, protected by the console.
	sample, err := os.ReadFile(filepath.Join(root, "testdata", "taskdef", "seeds-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	sample = bytes.Replace(sample, []byte(`"matthewabq/twistlock-fargate-auto"`), []byte(`"`+appImage+`"`), 1)
	consoleAddr := strings.TrimPrefix(consoleURL, "http://")
	protected := call(t, ctx, http.MethodPost, consoleURL+api.PathFargateJSON+"?consoleaddr="+consoleAddr+"&defenderImage="+defenderImage, string(sample), http.StatusOK)
	taskFile := filepath.Join(dir, "protected.json")
	if err := os.WriteFile(taskFile, protected, 0o644); err != nil {
		t.Fatal(err)
	}

	netnsBefore := netns(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, taskguard, "task", "run-local", taskFile, "-v",
		"--console", consoleURL, "--dns", localrun.HostLoopback, "--stop-timeout", "5s",
		"--image-archive", appImage+"="+appTar, "--image-archive", defenderImage+"="+defenderTar)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("run-local stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("run-local: %v", err)
	}
	logs := stdout.String()
	for _, want := range []string{"mkdir test: refused", "yahoo.com: failed", "google.com: fetched"} {
		if !strings.Contains(logs, "twistlock-fargate-task | "+want) {
			t.Errorf("the app did not print %q", want)
		}
	}
	if n := hits.count("google.com"); n == 0 {
		t.Error("google.com was never fetched")
	}
	if n := hits.count("yahoo.com"); n != 0 {
		t.Errorf("yahoo.com was fetched %d times", n)
	}

	// The console holds exactly the seeds' audits.
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := call(t, ctx, http.MethodGet, consoleURL+api.PathRuntimeAudits+"?task="+family, "", http.StatusOK)
		var page struct {
			Audits []api.Audit `json:"audits"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("audits: %v: %s", err, body)
		}
		got = got[:0]
		for _, a := range page.Audits {
			got = append(got, a.Message)
		}
		slices.Sort(got)
		if len(got) >= len(seedsAudits) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	want := slices.Clone(seedsAudits)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("console audits:\n%q\nwant exactly:\n%q", got, want)
	}

	// Teardown: no pod, container, volume or network namespace left.
	for _, args := range [][]string{
		{"pod", "ps", "--format", "{{.Name}}"},
		{"ps", "-a", "--format", "{{.Names}}"},
	} {
		o := run(t, ctx, nil, "podman", args...)
		if strings.Contains(o, "taskguard-"+family) {
			t.Errorf("podman %s: left behind:\n%s", strings.Join(args, " "), o)
		}
	}
	if after := netns(t); after != netnsBefore {
		t.Errorf("network namespaces before:\n%s\nafter:\n%s", netnsBefore, after)
	}
}

func goBuild(t *testing.T, root, out string, pkgs ...string) {
	t.Helper()
	args := append([]string{"build", "-o", out + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}

func run(t *testing.T, ctx context.Context, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func netns(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	return string(out)
}

func call(t *testing.T, ctx context.Context, method, url, body string, want ...int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return b
}

func startConsole(t *testing.T, ctx context.Context, binary, dataDir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(binary, "--data-dir", dataDir, "--listen", addr, "--insecure-http", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "TASKGUARD_ADMIN_PASSWORD="+adminPassword, "TASKGUARD_ADMIN_USER=admin")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("console log:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+api.PathPing, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("console did not answer on %s: %v\n%s", url, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type hitCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *hitCounter) count(host string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[host]
}

// startWebSites serves yahoo.com and google.com on 127.0.0.1:80.
func startWebSites(t *testing.T) *hitCounter {
	t.Helper()
	hits := &hitCounter{n: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Skipf("the web sites need 127.0.0.1:80: %v", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		hits.mu.Lock()
		hits.n[host]++
		hits.mu.Unlock()
		fmt.Fprintf(w, "<html><body>%s served by the e2e test</body></html>\n", host)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return hits
}

// startDNS answers A queries for yahoo.com and google.com with addr, on
// 127.0.0.1:53 (UDP and TCP).
func startDNS(t *testing.T, addr string) {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qu := range q.Question {
			name := strings.ToLower(strings.TrimSuffix(qu.Name, "."))
			if qu.Qtype == dns.TypeA && (name == "yahoo.com" || name == "google.com" || strings.HasSuffix(name, ".yahoo.com") || strings.HasSuffix(name, ".google.com")) {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qu.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(addr)})
			}
		}
		if len(m.Answer) == 0 && len(q.Question) > 0 && q.Question[0].Qtype == dns.TypeA {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: "127.0.0.1:53", Net: network, Handler: handler}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				started <- err
			}
		}()
		if err := <-started; err != nil {
			if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EADDRINUSE) {
				t.Skipf("the test's DNS server needs 127.0.0.1:53: %v", err)
			}
			t.Fatalf("DNS on 127.0.0.1:53/%s: %v", network, err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
}
