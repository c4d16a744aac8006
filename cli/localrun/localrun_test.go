package localrun_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/cli/localrun"
	"github.com/taskguard/taskguard/cli/localrun/testimage"
	"github.com/taskguard/taskguard/internal/testenv"
)

func requirePodman(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, b := range []string{"podman", "runc", "catatonit", "slirp4netns"} {
		if _, err := exec.LookPath(b); err != nil {
			if _, err2 := exec.LookPath("/usr/libexec/podman/" + b); err2 != nil {
				testenv.Skip(t, "needs %s (apt-get install podman runc catatonit slirp4netns)", b)
			}
		}
	}
}

// testLog sends the runner's progress to the test log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// leftovers lists what podman and ip netns hold whose name contains pod.
func leftovers(t *testing.T, pod string) []string {
	t.Helper()
	var left []string
	for _, args := range [][]string{
		{"podman", "pod", "ps", "--format", "{{.Name}}"},
		{"podman", "ps", "-a", "--format", "{{.Names}}"},
		{"podman", "volume", "ls", "--format", "{{.Name}}"},
	} {
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, l := range strings.Fields(string(out)) {
			if strings.Contains(l, pod) {
				left = append(left, args[1]+" "+l)
			}
		}
	}
	return left
}

// checkGone: the pod's network namespace and the containers' volumes are
// gone (other tests may run pods at the same time, so only ours count).
func checkGone(t *testing.T, res *localrun.Result) {
	t.Helper()
	if res.NetNS == "" {
		t.Error("the run did not report its network namespace")
	} else {
		if _, err := os.Stat(res.NetNS); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("network namespace %s is still there (%v)", res.NetNS, err)
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), filepath.Base(res.NetNS)) {
			t.Errorf("ip netns list still shows %s", filepath.Base(res.NetNS))
		}
	}
	for _, v := range res.Volumes {
		if exec.Command("podman", "volume", "exists", v).Run() == nil {
			t.Errorf("volume %s is still there", v)
		}
	}
}

func TestRunTask(t *testing.T) {
	requirePodman(t)
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:localrun", testimage.Spec{
		Config: v1.Config{Volumes: map[string]struct{}{"/data": {}}, Cmd: []string{"/bin/sh"}},
	})
	port := int(testenv.FreePort(t))
	task := fmt.Sprintf(`{
	  "family": "localrun-test",
	  "containerDefinitions": [
	    {"name": "app", "image": "localhost/taskguard-test/busybox:localrun", "essential": true,
	     "entryPoint": ["/bin/sh", "-c"],
	     "command": ["cat /data/marker; echo env=$GREETING secret=$API_KEY; grep CapEff /proc/self/status; wget -q -O- http://127.0.0.1:%[1]d/index.html; sleep 3; exit 3"],
	     "environment": [{"name": "GREETING", "value": "hello"}],
	     "secrets": [{"name": "API_KEY", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/key"}],
	     "volumesFrom": [{"sourceContainer": "init", "readOnly": true}],
	     "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}, {"containerName": "web", "condition": "HEALTHY"}],
	     "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"]}}},
	    {"name": "web", "image": "localhost/taskguard-test/busybox:localrun", "essential": false,
	     "entryPoint": ["/bin/sh", "-c"],
	     "command": ["mkdir -p /www && echo served-from-web > /www/index.html && exec httpd -f -p %[1]d -h /www"],
	     "portMappings": [{"containerPort": %[1]d, "protocol": "tcp"}],
	     "healthCheck": {"command": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:%[1]d/index.html"], "interval": 1, "retries": 5}},
	    {"name": "init", "image": "localhost/taskguard-test/busybox:localrun", "essential": false,
	     "entryPoint": ["/bin/sh", "-c", "echo marker-from-init > /data/marker"]}
	  ]}`, port)
	td, err := localrun.ParseTask([]byte(task))
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	// While the task runs, the published port answers on the host's loopback.
	published := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				published <- string(b)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	res, err := localrun.Run(ctx, td, localrun.Options{Log: testLog(t),
		Archives:  map[string]string{"": archive},
		Output:    &out,
		LookupEnv: func(k string) (string, bool) { return map[string]string{"API_KEY": "s3cret"}[k], k == "API_KEY" },
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	logs := out.String()
	t.Logf("logs:\n%s", logs)
	if res.StoppedBy != "app" || res.ExitCode != 3 {
		t.Errorf("stopped by %q with %d, want app with 3", res.StoppedBy, res.ExitCode)
	}
	for _, want := range []string{"app | marker-from-init", "app | env=hello secret=s3cret", "app | served-from-web"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	m := regexp.MustCompile(`app \| CapEff:\s+([0-9a-f]+)`).FindStringSubmatch(logs)
	if m == nil {
		t.Error("no CapEff line")
	} else if caps, _ := strconv.ParseUint(m[1], 16, 64); caps&(1<<19) == 0 {
		t.Errorf("CapEff %s lacks CAP_SYS_PTRACE", m[1])
	}
	select {
	case body := <-published:
		if strings.TrimSpace(body) != "served-from-web" {
			t.Errorf("127.0.0.1:%d answered %q", port, body)
		}
	default:
		t.Errorf("port %d was not published on 127.0.0.1 while the task ran", port)
	}
	// Start order: init before app; init's exit code 0, web stopped.
	got := map[string]localrun.ContainerResult{}
	var order []string
	for _, c := range res.Containers {
		got[c.Name] = c
		order = append(order, c.Name)
	}
	if strings.Join(order, ",") != "init,web,app" {
		t.Errorf("start order %v", order)
	}
	if !got["init"].Started || got["init"].ExitCode != 0 {
		t.Errorf("init: %+v", got["init"])
	}
	if l := leftovers(t, res.Pod); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	checkGone(t, res)
}

func TestPodLabel(t *testing.T) {
	requirePodman(t)
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:localrun", testimage.Spec{})
	td, err := localrun.ParseTask([]byte(`{"family": "label-test", "containerDefinitions": [
	  {"name": "main", "image": "localhost/taskguard-test/busybox:localrun", "entryPoint": ["/bin/sh", "-c", "exit 0"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := localrun.Run(context.Background(), td, localrun.Options{Log: testLog(t), Archives: map[string]string{"": archive}, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Command("podman", "pod", "rm", "--force", res.Pod).Run()
	out, err := exec.Command("podman", "pod", "ps", "--filter", "label="+localrun.PodLabel+"=label-test", "--format", "{{.Name}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), res.Pod) {
		t.Fatalf("kept pod %s not found by its label: %q", res.Pod, out)
	}
}

func TestRunCancelTearsDown(t *testing.T) {
	requirePodman(t)
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:localrun", testimage.Spec{})
	td, err := localrun.ParseTask([]byte(`{"family": "cancel-test", "containerDefinitions": [
	  {"name": "sleeper", "image": "localhost/taskguard-test/busybox:localrun", "entryPoint": ["/bin/sh", "-c", "echo up; exec sleep 300"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.SyncBuffer{}
	// Polls the app's output (with a deadline) for the line that says it runs.
	sawUp := make(chan bool, 1)
	go func() {
		defer cancel() // what Ctrl-C does in the CLI
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), "sleeper | up"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				sawUp <- false
				return
			}
		}
		sawUp <- true
	}()
	start := time.Now()
	res, err := localrun.Run(ctx, td, localrun.Options{Log: testLog(t), Archives: map[string]string{"": archive}, Output: out, StopTimeout: time.Second})
	if !<-sawUp {
		t.Fatalf("the app never printed up; output:\n%s", out.String())
	}
	if err == nil || ctx.Err() == nil {
		t.Fatalf("err %v, want context canceled", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("cancel took %s", d)
	}
	if l := leftovers(t, res.Pod); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	checkGone(t, res)
}

func TestSecretMissing(t *testing.T) {
	requirePodman(t)
	td, err := localrun.ParseTask([]byte(`{"family": "f", "containerDefinitions": [
	  {"name": "a", "image": "x", "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:eu-west-1:1:secret:db"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = localrun.Run(context.Background(), td, localrun.Options{Log: testLog(t), LookupEnv: func(string) (string, bool) { return "", false }})
	if err == nil || !strings.Contains(err.Error(), "set DB_PASSWORD in the environment") {
		t.Fatalf("err %v", err)
	}
}

func TestParseTaskErrors(t *testing.T) {
	tests := []struct{ name, task, want string }{
		{"empty", ``, "empty"},
		{"no containers", `{"family": "f", "containerDefinitions": []}`, "containerDefinitions"},
		{"no image", `{"family": "f", "containerDefinitions": [{"name": "a"}]}`, `"a" has no image`},
		{"unknown dependency", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "dependsOn": [{"containerName": "b", "condition": "START"}]}]}`, `dependsOn "b": no such container`},
		{"bad condition", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "dependsOn": [{"containerName": "a", "condition": "READY"}]}]}`, `condition "READY"`},
		{"healthy without check", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "dependsOn": [{"containerName": "a", "condition": "HEALTHY"}]}]}`, "no healthCheck"},
		{"cycle", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "dependsOn": [{"containerName": "b", "condition": "START"}]}, {"name": "b", "image": "x", "volumesFrom": [{"sourceContainer": "a"}]}]}`, "cycle"},
		{"unknown volume source", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "volumesFrom": [{"sourceContainer": "z"}]}]}`, `volumesFrom "z"`},
		{"host port differs", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "portMappings": [{"containerPort": 80, "hostPort": 81}]}]}`, "awsvpc"},
		{"no essential", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "essential": false}]}`, "no essential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := localrun.ParseTask([]byte(tt.task))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPodURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://127.0.0.1:8083":      "https://10.0.2.2:8083",
		"http://localhost:9/api":      "http://10.0.2.2:9/api",
		"https://[::1]:8083":          "https://10.0.2.2:8083",
		"https://console.example:443": "https://console.example:443",
		"not a url":                   "not a url",
	} {
		if got := localrun.PodURL(in); got != want {
			t.Errorf("PodURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainersConf(t *testing.T) {
	conf, err := localrun.ContainersConf()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`runtime = "runc"`, `cgroup_manager = "cgroupfs"`, `"nofile=`, `"nproc=`} {
		if !strings.Contains(conf, want) {
			t.Errorf("containers.conf lacks %s:\n%s", want, conf)
		}
	}
}

// TestRunFromRegistry: an image only in a registry (a real one, ggcr's, on
// loopback) is pulled.
func TestRunFromRegistry(t *testing.T) {
	requirePodman(t)
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:registry", testimage.Spec{})
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/taskguard-test/pulled:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	defer exec.Command("podman", "rmi", "--force", ref).Run()
	td, err := localrun.ParseTask([]byte(`{"family": "registry-test", "containerDefinitions": [
	  {"name": "main", "image": "` + ref + `", "entryPoint": ["/bin/sh", "-c", "echo pulled; exit 0"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	res, err := localrun.Run(context.Background(), td, localrun.Options{Log: testLog(t), Output: &out, InsecureRegistry: true})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.ExitCode != 0 || !strings.Contains(out.String(), "main | pulled") {
		t.Fatalf("exit %d, logs %q", res.ExitCode, out.String())
	}
}

// TestDependencyFailed: a SUCCESS dependency that exits non-zero fails the
// run before the dependent container starts, and the pod is still removed.
func TestDependencyFailed(t *testing.T) {
	requirePodman(t)
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:localrun", testimage.Spec{})
	td, err := localrun.ParseTask([]byte(`{"family": "dep-test", "containerDefinitions": [
	  {"name": "app", "image": "localhost/taskguard-test/busybox:localrun", "entryPoint": ["/bin/sh", "-c", "echo app started"],
	   "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]},
	  {"name": "migrate", "image": "localhost/taskguard-test/busybox:localrun", "essential": false, "entryPoint": ["/bin/sh", "-c", "exit 7"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	res, err := localrun.Run(context.Background(), td, localrun.Options{Log: testLog(t), Archives: map[string]string{"": archive}, Output: &out, StopTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), `dependsOn "migrate" SUCCESS: it exited with code 7`) {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(out.String(), "app started") {
		t.Error("app started although its dependency failed")
	}
	if l := leftovers(t, res.Pod); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

// TestDependsOnComplete: COMPLETE waits for the dependency to exit, whatever
// its code; the essential container's exit code is the task's.
func TestDependsOnComplete(t *testing.T) {
	requirePodman(t)
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:complete", testimage.Spec{
		Config: v1.Config{Volumes: map[string]struct{}{"/data": {}}},
	})
	td, err := localrun.ParseTask([]byte(`{"family": "complete-test", "containerDefinitions": [
	  {"name": "app", "image": "localhost/taskguard-test/busybox:complete", "entryPoint": ["/bin/sh", "-c", "echo app read $(cat /data/done); exit 5"],
	   "volumesFrom": [{"sourceContainer": "migrate"}],
	   "dependsOn": [{"containerName": "migrate", "condition": "COMPLETE"}]},
	  {"name": "migrate", "image": "localhost/taskguard-test/busybox:complete", "essential": false, "entryPoint": ["/bin/sh", "-c", "sleep 1; echo migrated > /data/done; exit 7"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	res, err := localrun.Run(context.Background(), td, localrun.Options{Log: testLog(t), Archives: map[string]string{"": archive}, Output: &out, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The app started after migrate had finished writing (and failed).
	if logs := out.String(); !strings.Contains(logs, "app | app read migrated") {
		t.Errorf("app did not start after migrate completed:\n%s", logs)
	}
	for _, c := range res.Containers {
		if c.Name == "migrate" && c.ExitCode != 7 {
			t.Errorf("migrate exit code %d, want 7", c.ExitCode)
		}
	}
	if res.StoppedBy != "app" || res.ExitCode != 5 {
		t.Errorf("stopped by %q with %d, want app with 5", res.StoppedBy, res.ExitCode)
	}
	checkGone(t, res)
}
