package console

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/server"
	"github.com/taskguard/taskguard/internal/testenv"
)

// protectVia posts the seeds' sample to a real console as the admin and
// returns the defender's environment and the warning headers.
func protectVia(t *testing.T, c *Console, consoleaddr string) (map[string]string, []string) {
	t.Helper()
	sample, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "taskdef", "seeds-sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", c.URL()+api.PathFargateJSON+"?consoleaddr="+consoleaddr, strings.NewReader(string(sample)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin-password")
	hc := http.DefaultClient
	if cert := c.Certificate(); cert != nil {
		hc = trusting(cert)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("protect: %d %s", resp.StatusCode, body)
	}
	var task struct {
		ContainerDefinitions []struct {
			Name        string
			Environment []struct{ Name, Value string }
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(body, &task); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, cd := range task.ContainerDefinitions {
		if cd.Name == "taskguard-defender" {
			for _, e := range cd.Environment {
				env[e.Name] = e.Value
			}
		}
	}
	return env, resp.Header.Values(server.HeaderWarning)
}

// A console started with --san covers that address: protect for it warns of
// nothing and the defender's PEM verifies the console for that name; an
// address the certificate does not cover is named in a warning.
func TestProtectCertificateCoversConsoleAddr(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AdminPassword = "admin-password"
	cfg.SANs = []string{"127.0.0.2", "console.test"}
	c := start(t, cfg)
	port := c.Addr().String()
	port = port[strings.LastIndex(port, ":")+1:]

	env, warnings := protectVia(t, c, "127.0.0.1:"+port)
	if len(warnings) > 0 || env["TASKGUARD_CONSOLE_CA_PEM"] == "" {
		t.Errorf("covered address: warnings %q, CA PEM %q", warnings, env["TASKGUARD_CONSOLE_CA_PEM"])
	}
	verifyConsoleWithDefenderEnv(t, env)
	// The --san address and name: covered too; the handshake goes to the
	// console's loopback address and verifies the name the defender would use.
	for _, name := range []string{"127.0.0.2", "console.test"} {
		env, warnings = protectVia(t, c, name+":"+port)
		if len(warnings) > 0 {
			t.Errorf("--san %s: warnings %q", name, warnings)
		}
		verifyConsoleWithDefenderEnvAt(t, env, "127.0.0.1:"+port)
	}
	_, warnings = protectVia(t, c, "10.0.2.2:"+port)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "does not cover 10.0.2.2") || !strings.Contains(warnings[0], "--san 10.0.2.2") {
		t.Errorf("uncovered address: warnings %q", warnings)
	}
}

// A console serving plain HTTP gives the defender an http:// URL and no PEM.
func TestProtectInsecureHTTPConsole(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AdminPassword = "admin-password"
	cfg.InsecureHTTP = true
	c := start(t, cfg)
	addr := strings.TrimPrefix(c.URL(), "http://")
	env, warnings := protectVia(t, c, addr)
	if env["TASKGUARD_CONSOLE"] != "http://"+addr || env["TASKGUARD_CONSOLE_CA_PEM"] != "" || len(warnings) > 0 {
		t.Errorf("plain console: env %v, warnings %q", env, warnings)
	}
}
