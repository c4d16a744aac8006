package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/console/tlscert"
	"github.com/taskguard/taskguard/internal/testenv"
	"sigs.k8s.io/yaml"
)

func taskFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "taskdef", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// protected is the part of a protected task the tests look at.
type protected struct {
	Family               string `json:"family"`
	ContainerDefinitions []struct {
		Name        string   `json:"name"`
		Image       string   `json:"image"`
		EntryPoint  []string `json:"entryPoint"`
		Command     []string `json:"command"`
		Environment []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"environment"`
		Secrets []struct {
			Name      string `json:"name"`
			ValueFrom string `json:"valueFrom"`
		} `json:"secrets"`
	} `json:"containerDefinitions"`
}

func parseProtected(t *testing.T, body string) protected {
	t.Helper()
	var p protected
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("protected task is not JSON: %v\n%s", err, body)
	}
	return p
}

func (p protected) env(container, name string) string {
	for _, c := range p.ContainerDefinitions {
		if c.Name == container {
			for _, e := range c.Environment {
				if e.Name == name {
					return e.Value
				}
			}
		}
	}
	return ""
}

const fargatePath = api.PathFargateJSON + "?consoleaddr=console.example.com:8083"

func TestProtectSeedsSample(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	resp := e.do("POST", fargatePath, basic(auth.RoleDefenderManager), taskFile(t, "seeds-sample.json"))
	if resp.status != 200 || !strings.HasPrefix(resp.header.Get("Content-Type"), "application/json") {
		t.Fatalf("protect: %d %s\n%s", resp.status, resp.header.Get("Content-Type"), resp.body)
	}
	p := parseProtected(t, resp.body)
	if len(p.ContainerDefinitions) != 2 {
		t.Fatalf("containers = %d, want the app and the defender", len(p.ContainerDefinitions))
	}
	app, def := p.ContainerDefinitions[0], p.ContainerDefinitions[1]
	if want := []string{"/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh"}; !slices.Equal(app.EntryPoint, want) {
		t.Errorf("app entryPoint = %q, want %q", app.EntryPoint, want)
	}
	if def.Name != "taskguard-defender" {
		t.Errorf("appended container %q, want taskguard-defender", def.Name)
	}
	token := p.env("taskguard-defender", "TASKGUARD_AGENT_TOKEN")
	if !strings.HasPrefix(token, "tga_") {
		t.Fatalf("the defender's credential = %q, want an agent token", token)
	}
	// The embedded credential is an agent of this family, and may do nothing else.
	pr, err := e.auth.Bearer(context.Background(), token)
	if err != nil || pr.Role != auth.RoleAgent || pr.TaskFamily != "twistlock-fargate-task" {
		t.Fatalf("the embedded credential authenticates as %+v, %v", pr, err)
	}
	for _, path := range []string{fargatePath, api.PathUsers} {
		if resp := e.do("POST", path, "bearer "+token, taskFile(t, "seeds-sample.json")); resp.status != 403 {
			t.Errorf("the agent credential on %s: %d, want 403", path, resp.status)
		}
	}
	// One credential per family: protecting again reuses it; another family gets its own.
	again := parseProtected(t, e.do("POST", fargatePath, basic(auth.RoleAdmin), taskFile(t, "seeds-sample.json")).body)
	if got := again.env("taskguard-defender", "TASKGUARD_AGENT_TOKEN"); got != token {
		t.Errorf("second protect minted another credential")
	}
	other := parseProtected(t, e.do("POST", fargatePath, basic(auth.RoleAdmin), taskFile(t, "multi-container.json")).body)
	if got := other.env("taskguard-defender", "TASKGUARD_AGENT_TOKEN"); got == token || !strings.HasPrefix(got, "tga_") {
		t.Errorf("another family's credential = %q", got)
	}
	if strings.Contains(e.logs.String(), token) {
		t.Errorf("the agent credential reached the log")
	}
	if !strings.Contains(e.logs.String(), `"msg":"task protected"`) {
		t.Errorf("no log line for the protection:\n%s", e.logs.String())
	}
}

func TestProtectWithSecretARN(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	arn := "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taskguard/agent-AbCdEf"
	resp := e.do("POST", fargatePath+"&agentTokenSecret="+url.QueryEscape(arn), basic(auth.RoleDefenderManager), taskFile(t, "seeds-sample.json"))
	if resp.status != 200 {
		t.Fatalf("protect: %d %s", resp.status, resp.body)
	}
	p := parseProtected(t, resp.body)
	if strings.Contains(resp.body, "tga_") || p.env("taskguard-defender", "TASKGUARD_AGENT_TOKEN") != "" {
		t.Fatalf("with a secret ARN the task still carries a token:\n%s", resp.body)
	}
	var found bool
	for _, c := range p.ContainerDefinitions {
		for _, s := range c.Secrets {
			found = found || s.ValueFrom == arn
		}
	}
	if !found {
		t.Fatalf("the ARN is not an ECS secrets entry:\n%s", resp.body)
	}
}

func TestProtectRoles(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	agent, _ := e.auth.AgentToken(context.Background(), "twistlock-fargate-task")
	task := taskFile(t, "seeds-sample.json")
	for _, tc := range []struct {
		cred string
		want int
	}{
		{basic(auth.RoleAdmin), 200},
		{basic(auth.RoleDefenderManager), 200},
		{basic(auth.RoleCI), 403},
		{basic(auth.RoleAuditor), 403},
		{basic(auth.RoleAgent), 403},
		{"bearer " + agent, 403},
		{"", 401},
		{"basic " + userOf(auth.RoleDefenderManager) + " wrong-password", 401},
	} {
		if resp := e.do("POST", fargatePath, tc.cred, task); resp.status != tc.want {
			t.Errorf("%q: %d, want %d (%s)", tc.cred, resp.status, tc.want, resp.body)
		}
	}
}

func TestProtectBadInput(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	task := taskFile(t, "seeds-sample.json")
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantError        string
	}{
		{"no consoleaddr", api.PathFargateJSON, task, 400, "consoleaddr query parameter is required"},
		{"typo in a parameter", api.PathFargateJSON + "?consoleAddr=x", task, 400, `unknown query parameter "consoleAddr"`},
		{"bad extractEntrypoint", fargatePath + "&extractEntrypoint=yes-please", task, 400, `extractEntrypoint="yes-please"`},
		{"bad secret ARN", fargatePath + "&agentTokenSecret=my-secret", task, 400, "is not a Secrets Manager secret or SSM parameter ARN"},
		{"not JSON", fargatePath, `family: x`, 400, "invalid task definition"},
		{"empty", fargatePath, ``, 400, "invalid task definition"},
		{"no containers", fargatePath, `{"family":"f","containerDefinitions":[]}`, 400, "container"},
		{"no family", fargatePath, `{"containerDefinitions":[{"name":"a","image":"b","entryPoint":["x"]}]}`, 400, `it has no "family"`},
		{"no entryPoint", fargatePath, taskFile(t, "no-entrypoint.json"), 400, `"reports"`},
		{"too large", fargatePath, `{"family":"f","x":"` + strings.Repeat("a", taskBody) + `"}`, 413, "larger than this endpoint's limit of 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do("POST", tt.path, basic(auth.RoleDefenderManager), tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			if msg := errorMessage(t, resp.body); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
		})
	}
}

func TestProtectYAML(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	in, err := yaml.JSONToYAML([]byte(taskFile(t, "seeds-sample.json")))
	if err != nil {
		t.Fatal(err)
	}
	resp := e.do("POST", api.PathFargateYAML+"?consoleaddr=console.example.com", basic(auth.RoleDefenderManager), string(in))
	if resp.status != 200 || !strings.HasPrefix(resp.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("protect YAML: %d %s\n%s", resp.status, resp.header.Get("Content-Type"), resp.body)
	}
	js, err := yaml.YAMLToJSON([]byte(resp.body))
	if err != nil {
		t.Fatalf("the answer is not YAML: %v", err)
	}
	p := parseProtected(t, string(js))
	if len(p.ContainerDefinitions) != 2 || p.ContainerDefinitions[0].EntryPoint[0] != "/var/lib/taskguard/defender" {
		t.Fatalf("protected YAML task: %s", resp.body)
	}
	if resp := e.do("POST", api.PathFargateYAML+"?consoleaddr=c", basic(auth.RoleDefenderManager), "a: [b"); resp.status != 400 {
		t.Errorf("bad YAML: %d, want 400", resp.status)
	}
}

// TestProtectExtractEntrypoint reads the entrypoint of an image from a real
// registry on loopback.
func TestProtectExtractEntrypoint(t *testing.T) {
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.Config.Entrypoint = []string{"/usr/bin/reports"}
	cf.Config.Cmd = []string{"--serve"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(reg.URL, "http://") + "/acme/reports:1.0"
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	task := strings.Replace(taskFile(t, "no-entrypoint.json"), "registry.example.com/reports:1.0", ref, 1)

	e := newTestEnv(t, auth.ThrottleConfig{})
	resp := e.do("POST", fargatePath+"&extractEntrypoint=true", basic(auth.RoleDefenderManager), task)
	if resp.status != 200 {
		t.Fatalf("extractEntrypoint: %d %s", resp.status, resp.body)
	}
	app := parseProtected(t, resp.body).ContainerDefinitions[0]
	if want := []string{"/var/lib/taskguard/defender", "entrypoint", "--", "/usr/bin/reports"}; !slices.Equal(app.EntryPoint, want) {
		t.Errorf("entryPoint = %q, want %q", app.EntryPoint, want)
	}
	// An image the registry does not have: upstream's problem, 502.
	missing := strings.Replace(task, "/acme/reports:1.0", "/acme/missing:1.0", 1)
	if resp := e.do("POST", fargatePath+"&extractEntrypoint=true", basic(auth.RoleDefenderManager), missing); resp.status != http.StatusBadGateway {
		t.Errorf("missing image: %d %s", resp.status, resp.body)
	}
}

// A WAF rule that matches the task's family adds its external port to the
// defender's portMappings; a rule for another family does not.
func TestProtectMapsWAFPorts(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	rules := `[{"name":"seeds-waf","scope":{"tasks":["twistlock-*"]},"externalPort":8080,"appPort":80,"protections":{"sqli":"prevent"}},
		{"name":"shop","scope":{"tasks":["shop-*"]},"externalPort":9443,"appPort":443,"protections":{"xss":"alert"}}]`
	if r := e.do("PUT", api.PathWAFPolicy, basic(auth.RoleAdmin), rules); r.status != 200 {
		t.Fatalf("set WAF rules: %d %s", r.status, r.body)
	}
	resp := e.do("POST", fargatePath, basic(auth.RoleDefenderManager), taskFile(t, "seeds-sample.json"))
	if resp.status != 200 {
		t.Fatalf("protect: %d %s", resp.status, resp.body)
	}
	var task struct {
		Containers []struct {
			Name         string `json:"name"`
			PortMappings []struct {
				ContainerPort int `json:"containerPort"`
			} `json:"portMappings"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal([]byte(resp.body), &task); err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, c := range task.Containers {
		if c.Name == "taskguard-defender" {
			for _, pm := range c.PortMappings {
				ports = append(ports, pm.ContainerPort)
			}
		}
	}
	if !slices.Equal(ports, []int{8080}) {
		t.Errorf("defender ports = %v, want [8080]", ports)
	}
}

// The API's selection parameters: the App Mesh + FireLens task protects only
// its app by default, the headers say which containers were left out and
// why, and include/exclude/failClosed/defenderPlatforms reach the transform.
func TestProtectSelectionParameters(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	task := taskFile(t, filepath.Join("corpus", "appmesh-firelens.json"))
	resp := e.do("POST", fargatePath, basic(auth.RoleDefenderManager), task)
	if resp.status != 200 {
		t.Fatalf("protect: %d %s", resp.status, resp.body)
	}
	if got := resp.header.Get(HeaderProtected); got != "app" {
		t.Errorf("%s = %q, want app", HeaderProtected, got)
	}
	skipped := strings.Join(resp.header.Values(HeaderSkipped), "\n")
	if !strings.Contains(skipped, "envoy: the proxyConfiguration container") || !strings.Contains(skipped, "log_router: FireLens log router") {
		t.Errorf("%s:\n%s", HeaderSkipped, skipped)
	}
	p := parseProtected(t, resp.body)
	for _, c := range p.ContainerDefinitions {
		launched := len(c.EntryPoint) > 0 && c.EntryPoint[0] == "/var/lib/taskguard/defender"
		if launched != (c.Name == "app") {
			t.Errorf("container %s entryPoint %q", c.Name, c.EntryPoint)
		}
	}
	if p.env("app", "TASKGUARD_FAIL_CLOSED") != "" {
		t.Errorf("fail-closed without failClosed=true")
	}

	resp = e.do("POST", fargatePath+"&exclude=app&include=envoy&failClosed=true", basic(auth.RoleDefenderManager), strings.Replace(task, `"user": "1337",`, `"user": "1337", "entryPoint": ["/usr/bin/envoy"],`, 1))
	if resp.status != 200 {
		t.Fatalf("protect with include/exclude: %d %s", resp.status, resp.body)
	}
	if got := resp.header.Get(HeaderProtected); got != "envoy" {
		t.Errorf("%s = %q, want envoy", HeaderProtected, got)
	}
	if got := parseProtected(t, resp.body).env("envoy", "TASKGUARD_FAIL_CLOSED"); got != "1" {
		t.Errorf("TASKGUARD_FAIL_CLOSED = %q, want 1", got)
	}

	arm := taskFile(t, filepath.Join("corpus", "arm64.json"))
	if resp := e.do("POST", fargatePath, basic(auth.RoleDefenderManager), arm); resp.status != 400 || !strings.Contains(errorMessage(t, resp.body), "defenderPlatforms=linux/amd64,linux/arm64") {
		t.Errorf("ARM64 task without an arm64 defender: %d %s", resp.status, resp.body)
	}
	if resp := e.do("POST", fargatePath+"&defenderPlatforms=linux/amd64,linux/arm64", basic(auth.RoleDefenderManager), arm); resp.status != 200 {
		t.Errorf("ARM64 task with an arm64 defender: %d %s", resp.status, resp.body)
	}
	for _, tc := range []struct{ query, want string }{
		{"&defenderPlatforms=linux/s390x", `"linux/s390x" is not linux/amd64 or linux/arm64`},
		{"&failClosed=maybe", `failClosed="maybe"`},
		{"&exclude=ghost", `container "ghost" is named to include or exclude`},
	} {
		if resp := e.do("POST", fargatePath+tc.query, basic(auth.RoleDefenderManager), task); resp.status != 400 || !strings.Contains(errorMessage(t, resp.body), tc.want) {
			t.Errorf("%s: %d %s", tc.query, resp.status, resp.body)
		}
	}
}

// consoleTrust: the scheme follows how the console serves, a self-signed
// certificate travels as PEM, an address it does not cover is a warning.
func TestConsoleTrust(t *testing.T) {
	res, err := tlscert.Load(tlscert.Options{Dir: t.TempDir(), SANs: []string{"console.internal", "10.0.2.2"}})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := res.Chain()
	if err != nil {
		t.Fatal(err)
	}
	tlsServer := &Server{serving: Serving{Chain: chain}}
	plain := &Server{serving: Serving{PlainHTTP: true}}
	tests := []struct {
		name         string
		s            *Server
		addr         string
		wantURL      string
		wantPEM      bool
		wantWarnings string
	}{
		{"self-signed, covered name", tlsServer, "console.internal:8083", "https://console.internal:8083", true, ""},
		{"self-signed, covered address", tlsServer, "10.0.2.2:8083", "https://10.0.2.2:8083", true, ""},
		{"self-signed, uncovered", tlsServer, "console.example.com:8083", "https://console.example.com:8083", true, "does not cover console.example.com"},
		{"plain console, bare address", plain, "console.internal:8083", "http://console.internal:8083", false, ""},
		{"plain console behind a TLS proxy", plain, "https://console.example.com", "https://console.example.com", false, "serves plain HTTP"},
		{"TLS console, http address", tlsServer, "http://console.internal:8083", "http://console.internal:8083", false, "serves HTTPS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := fargate.Options{ConsoleAddr: tt.addr}
			warnings, err := tt.s.consoleTrust(&opts)
			if err != nil {
				t.Fatal(err)
			}
			if opts.ConsoleAddr != tt.wantURL {
				t.Errorf("console URL %q, want %q", opts.ConsoleAddr, tt.wantURL)
			}
			if (opts.ConsoleCAPEM != "") != tt.wantPEM {
				t.Errorf("CA PEM %q, want one: %v", opts.ConsoleCAPEM, tt.wantPEM)
			}
			if got := strings.Join(warnings, "\n"); (tt.wantWarnings == "") != (got == "") || !strings.Contains(got, tt.wantWarnings) {
				t.Errorf("warnings %q, want %q", got, tt.wantWarnings)
			}
		})
	}
	if _, err := tlsServer.consoleTrust(&fargate.Options{ConsoleAddr: "https://c/api"}); err == nil {
		t.Error("a consoleaddr with a path was accepted")
	}
}
