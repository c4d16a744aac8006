//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/miekg/dns"

	"github.com/taskguard/taskguard/cli/localrun"
	"github.com/taskguard/taskguard/cli/localrun/testimage"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/internal/testnet"
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

// entry.sh is the seeds' sample app (without its final five-minute sleep:
// the task ends when it is done, and the audits still reach the console).
const entrySh = `#!/bin/sh
mkdir test && echo "mkdir test: created" || echo "mkdir test: refused"
wget -q -T 5 -O - http://yahoo.com/ && echo "yahoo.com: fetched" || echo "yahoo.com: failed"
wget -q -T 5 -O - http://google.com/ && echo "google.com: fetched" || echo "google.com: failed"
`

func requireTools(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, b := range []string{"podman", "runc", "catatonit", "slirp4netns", "dash", "mkdir", "wget", "curl", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			testenv.Skip(t, "needs %s (apt-get install podman runc catatonit slirp4netns busybox-static)", b)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Skip(t, "needs busybox-static")
	}
}

// env is what both scenarios share: the programs, the defender image, the
// test's network namespace and a running console.
type env struct {
	root, dir, taskguard, defenderTar, consoleURL string
	// ns is the network namespace the test made: the DNS server, the web
	// sites, the console and run-local (so podman, slirp4netns and the pod's
	// published ports) live in it, and its 127.0.0.1 is the pod's 10.0.2.2.
	// No port of the host's is taken.
	ns *testnet.NS
	// client trusts the console's self-signed certificate (no -k) and
	// connects from inside ns.
	client *http.Client
}

// start starts cmd inside the test's network namespace.
func (e *env) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := e.ns.Start(cmd); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
}

// combinedOutput runs cmd inside the test's network namespace.
func (e *env) combinedOutput(cmd *exec.Cmd) ([]byte, error) {
	var out testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := e.ns.Start(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return []byte(out.String()), err
}

// TestE2E runs the seeds' scenarios end to end (issue 9): the runtime rule on
// the sample task (must-show 1), the WAF (must-show 2), and after each, no
// pod, container or network namespace left (must-show 3).
func TestE2E(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e := &env{root: testenv.RepoRoot(t), dir: t.TempDir(), ns: testnet.New(t)}

	// Programs, built as users build them.
	bin := filepath.Join(e.dir, "bin")
	goBuild(t, e.root, bin, "./cmd/taskguard", "./cmd/taskguard-console")
	e.taskguard = filepath.Join(bin, "taskguard")

	// The defender image, from the module source, for this machine only (the
	// pod runs it; the two-platform index is TestDefenderImageIndexCLI's).
	e.defenderTar = filepath.Join(e.dir, "defender.tar")
	out := run(t, ctx, nil, e.taskguard, "defender", "image", "--module", e.root, "--platform", "linux/"+runtime.GOARCH, "--output", e.defenderTar, "--tag", defenderImage)
	t.Logf("defender image %s", strings.TrimSpace(out))
	// Reproducible from source: a second build prints the same digest.
	if again := run(t, ctx, nil, e.taskguard, "defender", "image", "--module", e.root, "--platform", "linux/"+runtime.GOARCH, "--output", filepath.Join(e.dir, "again.tar"), "--tag", defenderImage); again != out {
		t.Errorf("second defender image build: %s, first: %s", again, out)
	}

	// DNS and web sites, on the loopback of the test's namespace (ports 53
	// and 80: resolv.conf carries no port and the app fetches
	// http://yahoo.com/): run-local runs in that namespace too, so the pod
	// reaches them at 10.0.2.2 (slirp4netns allow_host_loopback).
	hits := startWebSites(t, e.ns)
	startDNS(t, e.ns, localrun.HostLoopback)

	// A real console with its defaults: HTTPS with a self-signed certificate
	// made at first start. --san adds the address the pod reaches the
	// namespace's loopback at, which run-local rewrites TASKGUARD_CONSOLE to.
	e.consoleURL, e.client = startConsole(t, ctx, e.ns, filepath.Join(bin, "taskguard-console"), filepath.Join(e.dir, "console"))

	t.Run("runtime", func(t *testing.T) { seedsRuntime(t, ctx, e, hits) })
	t.Run("waf", func(t *testing.T) { seedsWAF(t, ctx, e) })
}

// protect sends the seeds' sample task, its image replaced, to the console
// with the seeds' curl (word for word but for the host names and the local
// defender image), and checks that the protected defender container carries
// what the defender needs to trust the console.
func (e *env) protect(t *testing.T, ctx context.Context, image string) []byte {
	t.Helper()
	sample, err := os.ReadFile(filepath.Join(e.root, "testdata", "taskdef", "seeds-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	sample = bytes.Replace(sample, []byte(`"matthewabq/twistlock-fargate-auto"`), []byte(`"`+image+`"`), 1)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "fargate.json"), sample, 0o644); err != nil {
		t.Fatal(err)
	}
	curl := exec.CommandContext(ctx, "sh", "-c", `curl -s -k -u $TG_USER:$TG_PASS "https://$TG_CONSOLE/api/v1/defenders/fargate.json?consoleaddr=$TG_CONSOLE&defenderImage=$TG_DEFENDER_IMAGE" -X POST -H "Content-Type:application/json" --data-binary "@fargate.json" | jq . > tg_fargate.json`)
	curl.Dir = work
	curl.Env = append(os.Environ(), "TG_USER=admin", "TG_PASS="+adminPassword,
		"TG_CONSOLE="+strings.TrimPrefix(e.consoleURL, "https://"), "TG_DEFENDER_IMAGE="+defenderImage)
	if out, err := e.combinedOutput(curl); err != nil {
		t.Fatalf("the seeds' curl: %v\n%s", err, out)
	}
	protected, err := os.ReadFile(filepath.Join(work, "tg_fargate.json"))
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
	if err := json.Unmarshal(protected, &td); err != nil {
		t.Fatalf("protect answered %v:\n%s", err, protected)
	}
	defEnv := map[string]string{}
	for _, c := range td.Containers {
		if c.Name == "taskguard-defender" {
			for _, kv := range c.Environment {
				defEnv[kv.Name] = kv.Value
			}
		}
	}
	if defEnv["TASKGUARD_CONSOLE"] != e.consoleURL {
		t.Errorf("the defender's TASKGUARD_CONSOLE is %q, want %s", defEnv["TASKGUARD_CONSOLE"], e.consoleURL)
	}
	if !strings.Contains(defEnv["TASKGUARD_CONSOLE_CA_PEM"], "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("the protected defender container has no TASKGUARD_CONSOLE_CA_PEM: it cannot trust the console's self-signed certificate:\n%s", protected)
	}
	return protected
}

// runLocal returns the run-local command for a protected task.
func (e *env) runLocal(ctx context.Context, task []byte, image, archive string) (*exec.Cmd, *testenv.SyncBuffer, *testenv.SyncBuffer, error) {
	taskFile := filepath.Join(e.dir, "protected-"+randomName()+".json")
	if err := os.WriteFile(taskFile, task, 0o644); err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.CommandContext(ctx, e.taskguard, "task", "run-local", taskFile, "-v",
		"--dns", localrun.HostLoopback, "--stop-timeout", "5s",
		"--image-archive", image+"="+archive, "--image-archive", defenderImage+"="+e.defenderTar)
	// A test that ends early interrupts it like Ctrl-C, so that it still
	// tears the pod down (SIGKILL would leave the pod behind).
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, stdout, stderr, nil
}

func seedsRuntime(t *testing.T, ctx context.Context, e *env, hits *hitCounter) {
	// The app image: dash, coreutils' mkdir and GNU wget from this host (a
	// static busybox wget cannot resolve next to a copied glibc: its NSS
	// dlopen of a foreign libc crashes).
	appTar := testimage.Build(t, appImage, testimage.Spec{
		HostBinaries: []string{"dash", "mkdir", "wget"},
		Links:        map[string]string{"/bin/sh": "dash"},
		Files:        map[string]string{"/bin/entry.sh": entrySh},
		Config:       v1.Config{Env: []string{"PATH=/bin"}, WorkingDir: "/tmp"},
	})

	// The runtime rule, through the console's policy API.
	rule := `{"name": "seeds", "scope": {"containers": ["twistlock-fargate-task"]},
	  "processes": {"effect": "prevent", "denied": ["mkdir"]},
	  "network": {"effect": "prevent", "deniedDomains": ["yahoo.com"]}}`
	e.call(t, ctx, http.MethodPost, e.consoleURL+api.PathRuntimePolicy, rule, http.StatusOK, http.StatusCreated)

	protected := e.protect(t, ctx, appImage)
	cmd, stdout, stderr, err := e.runLocal(ctx, protected, appImage, appTar)
	if err != nil {
		t.Fatal(err)
	}
	e.start(t, cmd)
	err = cmd.Wait()
	t.Logf("run-local stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("run-local: %v", err)
	}
	logs := stdout.String()
	// The defender trusted the console: no certificate error, and the app
	// did not start unprotected.
	for _, bad := range []string{"x509", "tls: failed", "runtime protection is off", "policy fetch failed"} {
		if strings.Contains(logs, bad) || strings.Contains(stderr.String(), bad) {
			t.Errorf("the task's output holds %q: the defender did not get its policy cleanly", bad)
		}
	}
	if !strings.Contains(logs, "taskguard-defender | ") || !strings.Contains(logs, `msg="policy updated"`) {
		t.Errorf("the defender did not log the policy it got from the console")
	}
	// The app's stdout and stderr share one stream: a shell's error may
	// precede a line on the same output line.
	appLines := ""
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, "twistlock-fargate-task | ") {
			appLines += l + "\n"
		}
	}
	for _, want := range []string{"mkdir test: refused", "yahoo.com: failed", "google.com: fetched"} {
		if !strings.Contains(appLines, want) {
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
		got = got[:0]
		for _, a := range e.audits(t, ctx, e.consoleURL+api.PathRuntimeAudits+"?task="+family) {
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
	t.Logf("the console holds the runtime audits %q", got)
	checkTeardown(t, ctx, stderr.String())
}

// seedsWAF is the seeds' WAF test: a web server on port 80 behind a WAF rule
// with a free external port (the seeds use 8080; SQLi prevent), the seeds' curl request blocked,
// a benign one answered by the app, the WAF audit in the console.
func seedsWAF(t *testing.T, ctx context.Context, e *env) {
	// The seeds use external port 8080; any free port does, so that the
	// test runs beside whatever listens on 8080.
	l, err := e.ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	wafURL := "http://127.0.0.1:" + strconv.Itoa(port)
	const webImage = "localhost/taskguard-e2e/web:seeds"
	webTar := testimage.Build(t, webImage, testimage.Spec{
		Files: map[string]string{"/bin/entry.sh": "#!/bin/sh\necho 'the app page' > /tmp/index.html\nexec httpd -f -p 80 -h /tmp\n"},
	})
	rule := `{"name": "seeds-waf", "scope": {"containers": ["twistlock-fargate-task"]},
	  "externalPort": ` + strconv.Itoa(port) + `, "appPort": 80, "protections": {"sqli": "prevent"}}`
	e.call(t, ctx, http.MethodPost, e.consoleURL+api.PathWAFPolicy, rule, http.StatusOK, http.StatusCreated)

	protected := e.protect(t, ctx, webImage)
	// The console's protect maps the WAF rule's external port on the defender.
	var td struct {
		Containers []struct {
			Name         string `json:"name"`
			PortMappings []struct {
				ContainerPort int `json:"containerPort"`
			} `json:"portMappings"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(protected, &td); err != nil {
		t.Fatal(err)
	}
	mapped := false
	for _, c := range td.Containers {
		for _, pm := range c.PortMappings {
			mapped = mapped || c.Name == "taskguard-defender" && pm.ContainerPort == port
		}
	}
	if !mapped {
		t.Fatalf("the protected task does not map the WAF port %d on the defender:\n%s", port, protected)
	}

	cmd, stdout, stderr, err := e.runLocal(ctx, protected, webImage, webTar)
	if err != nil {
		t.Fatal(err)
	}
	e.start(t, cmd)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped { // a failure below: still tear the pod down
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(time.Minute):
			}
		}
		t.Logf("run-local stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}()

	// Wait for the app's page through the WAF.
	var page string
	for deadline := time.Now().Add(45 * time.Second); ; {
		resp, err := e.client.Get(wafURL + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				page = string(b)
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("run-local ended before the app answered: %v", err)
		default:
		}
		if strings.Contains(stdout.String(), "WAF proxy not started") {
			t.Fatal("the defender did not start the WAF proxy")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", wafURL, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if strings.TrimSpace(page) != "the app page" {
		t.Errorf("benign request got %q, want the app's page", page)
	}

	// The seeds' curl, word for word but for the port.
	work := t.TempDir()
	curl := exec.CommandContext(ctx, "sh", "-c", `curl -o reply.html -H 'Content-Type: application/json' -X POST -d '{"-1+union+all+select+1,group_concat(user,0x3a,file_priv),3,4+from+mysql.user--"}' `+wafURL)
	curl.Dir = work
	if out, err := e.combinedOutput(curl); err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	reply, err := os.ReadFile(filepath.Join(work, "reply.html"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Event ID: <code>([^<]+)</code>`).FindSubmatch(reply)
	if !bytes.Contains(reply, []byte("blocked by taskguard")) || m == nil {
		t.Fatalf("reply.html is not the block page:\n%s", reply)
	}
	event := string(m[1])

	// Ctrl-C at once ends the task and tears it down. The audit still
	// reaches the console: run-local stops the app before the defender and
	// the pod's network last, so the sidecar's final delivery goes through.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		stopped = true
	case <-time.After(60 * time.Second):
		t.Fatal("run-local did not end within 60s of Ctrl-C")
	}

	// The console shows the WAF audit.
	var found *api.Audit
	for deadline := time.Now().Add(30 * time.Second); found == nil && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		for _, a := range e.audits(t, ctx, e.consoleURL+api.PathFirewallAudits+"?task="+family) {
			if a.WAF != nil && a.WAF.EventID == event {
				found = &a
				break
			}
		}
	}
	if found == nil {
		all, _ := json.Marshal(e.audits(t, ctx, e.consoleURL+api.PathFirewallAudits))
		t.Fatalf("the console has no WAF audit with event ID %s; it has %s", event, all)
	}
	if !slices.Contains(found.WAF.Protections, "sqli") || found.Container != "twistlock-fargate-task" || found.Effect != "prevent" {
		t.Errorf("WAF audit %+v %+v, want sqli prevented in twistlock-fargate-task", *found, *found.WAF)
	}
	checkTeardown(t, ctx, stderr.String())
}

func (e *env) audits(t *testing.T, ctx context.Context, url string) []api.Audit {
	t.Helper()
	body := e.call(t, ctx, http.MethodGet, url, "", http.StatusOK)
	var page struct {
		Audits []api.Audit `json:"audits"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("audits: %v: %s", err, body)
	}
	return page.Audits
}

// checkTeardown: the run's pod, its containers, their volumes and the
// pod's network namespace (named in run-local's -v log) are all gone.
// Other packages' tests may run pods at the same time: only ours count.
func checkTeardown(t *testing.T, ctx context.Context, log string) {
	t.Helper()
	field := func(key string) []string {
		var vals []string
		for _, m := range regexp.MustCompile(key+`=(\S+)`).FindAllStringSubmatch(log, -1) {
			if !slices.Contains(vals, m[1]) {
				vals = append(vals, m[1])
			}
		}
		return vals
	}
	pods, nets, vols := field(" pod"), field("netns"), field("volume")
	if len(pods) != 1 || len(nets) != 1 || len(vols) == 0 {
		t.Fatalf("run-local -v named pods %q, netns %q, volumes %q: want one pod, its netns and the defender's volume", pods, nets, vols)
	}
	for _, args := range [][]string{
		{"pod", "ps", "--format", "{{.Name}}"},
		{"ps", "-a", "--format", "{{.Names}}"},
	} {
		if o := run(t, ctx, nil, "podman", args...); strings.Contains(o, pods[0]) {
			t.Errorf("podman %s: %s left behind:\n%s", strings.Join(args, " "), pods[0], o)
		}
	}
	for _, v := range vols {
		if exec.Command("podman", "volume", "exists", v).Run() == nil {
			t.Errorf("volume %s left behind", v)
		}
	}
	if _, err := os.Stat(nets[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace %s left behind (%v)", nets[0], err)
	}
	if o := run(t, ctx, nil, "ip", "netns", "list"); strings.Contains(o, filepath.Base(nets[0])) {
		t.Errorf("ip netns list still shows %s", filepath.Base(nets[0]))
	}
}

func randomName() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

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

func (e *env) call(t *testing.T, ctx context.Context, method, url, body string, want ...int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
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

// startConsole runs taskguard-console with its defaults (HTTPS, a
// self-signed certificate) on a free port of ns's loopback, and returns its
// URL and a client that trusts its certificate, read from the data
// directory, and connects from inside ns.
func startConsole(t *testing.T, ctx context.Context, ns *testnet.NS, binary, dataDir string) (string, *http.Client) {
	t.Helper()
	l, err := ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(binary, "--data-dir", dataDir, "--listen", addr, "--san", localrun.HostLoopback, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "TASKGUARD_ADMIN_PASSWORD="+adminPassword, "TASKGUARD_ADMIN_USER=admin")
	logs := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			t.Logf("console log:\n%s", logs.String())
		}
	})
	url := "https://" + addr
	certFile := filepath.Join(dataDir, "tls", "console.crt")
	for deadline := time.Now().Add(30 * time.Second); ; {
		if pemBytes, err := os.ReadFile(certFile); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pemBytes) {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				tr.TLSClientConfig = &tls.Config{RootCAs: pool}
				tr.DialContext = ns.DialContext
				tr.Proxy = nil
				client := &http.Client{Transport: tr, Timeout: time.Minute}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+api.PathPing, nil)
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return url, client
					}
				}
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the console exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("console did not answer on %s with the certificate %s\n%s", url, certFile, logs.String())
		}
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

// startWebSites serves yahoo.com and google.com on 127.0.0.1:80 inside ns.
func startWebSites(t *testing.T, ns *testnet.NS) *hitCounter {
	t.Helper()
	hits := &hitCounter{n: map[string]int{}}
	l, err := ns.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatalf("the web sites on 127.0.0.1:80 of the test's namespace: %v", err)
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
// 127.0.0.1:53 (UDP and TCP) inside ns.
func startDNS(t *testing.T, ns *testnet.NS, addr string) {
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
		srv := &dns.Server{Net: network, Handler: handler}
		var err error
		if network == "udp" {
			srv.PacketConn, err = ns.ListenPacket("udp", "127.0.0.1:53")
		} else {
			srv.Listener, err = ns.Listen("tcp", "127.0.0.1:53")
		}
		if err != nil {
			t.Fatalf("DNS on 127.0.0.1:53/%s of the test's namespace: %v", network, err)
		}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				started <- err
			}
		}()
		if err := <-started; err != nil {
			t.Fatalf("DNS on 127.0.0.1:53/%s: %v", network, err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
}
