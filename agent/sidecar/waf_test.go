package sidecar

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/waf"
)

// TestStandaloneWAF: a WAF rule for this task family in the policy makes the
// sidecar listen on its external port, block the seeds' SQL injection with
// the block page, forward a benign request to the app port, and audit.
func TestStandaloneWAF(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "the app's page") }))
	defer app.Close()
	appPort := app.Listener.Addr().(*net.TCPAddr).Port
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	extPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.json")
	pol := fmt.Sprintf(`{"revision": 2, "waf": [
	  {"name": "other-task", "scope": {"tasks": ["other"]}, "externalPort": %[1]d, "appPort": 1, "protections": {"sqli": "alert"}},
	  {"name": "seeds-waf", "scope": {"tasks": ["twistlock-*"], "containers": ["twistlock-fargate-task"]}, "externalPort": %[1]d, "appPort": %[2]d, "protections": {"sqli": "prevent"}}]}`, extPort, appPort)
	if err := os.WriteFile(pf, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, Options{SocketPath: filepath.Join(dir, "s.sock"), StateDir: filepath.Join(dir, "state"), PolicyFile: pf,
			Audits: audit.NewJSONLines(&out), Ready: ready, WAFTask: "twistlock-fargate-task", WAFAddr: "127.0.0.1"})
	}()
	<-ready
	url := fmt.Sprintf("http://127.0.0.1:%d/", extPort)
	get := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	benign, _ := http.NewRequest(http.MethodGet, url, nil)
	if resp, body := get(benign); resp.StatusCode != 200 || body != "the app's page" {
		t.Fatalf("benign request: %s %q", resp.Status, body)
	}
	sqli, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"-1+union+all+select+1,group_concat(user,0x3a,file_priv),3,4+from+mysql.user--"}`))
	sqli.Header.Set("Content-Type", "application/json")
	resp, body := get(sqli)
	event := resp.Header.Get(waf.EventIDHeader)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "blocked by taskguard") || event == "" || !strings.Contains(body, event) {
		t.Fatalf("SQLi: %s event %q %q", resp.Status, event, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), event) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if a := out.String(); !strings.Contains(a, event) || !strings.Contains(a, `"kind":"waf"`) || !strings.Contains(a, `"container":"twistlock-fargate-task"`) {
		t.Fatalf("audits %s, want the WAF event %s", a, event)
	}
}
