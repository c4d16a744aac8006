package fargate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpusOptions are the options each corpus task is protected with.
var corpusOptions = map[string]Options{
	"web-worker":       {ConsoleAddr: "console.internal:8083", AgentTokenSecretARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taskguard/agent-Ab12Cd", FailClosed: true},
	"appmesh-firelens": {ConsoleAddr: "https://console.internal:8083", AgentTokenSecretARN: "arn:aws:ssm:us-east-1:123456789012:parameter/taskguard/agent"},
	"efs":              {ConsoleAddr: "console.internal", AgentToken: "agent-token-for-tests"},
	"secrets":          {ConsoleAddr: "10.0.2.2:8083", AgentToken: "agent-token-for-tests", ConsoleCAPEM: testCAPEM, SkipImages: []string{"public.ecr.aws/aws-observability/*"}},
	"arm64":            {ConsoleAddr: "console.internal:8083", AgentToken: "agent-token-for-tests", DefenderPlatforms: []string{PlatformAMD64, PlatformARM64}},
}

// testCAPEM stands for a console's self-signed certificate.
const testCAPEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIQTESTtestTESTtestTESTtest\n-----END CERTIFICATE-----\n"

// describeOutput wraps a RegisterTaskDefinition input the way
// `aws ecs describe-task-definition --include TAGS` prints it.
func describeOutput(t *testing.T, in []byte) []byte {
	t.Helper()
	o, err := parseObject(in)
	if err != nil {
		t.Fatal(err)
	}
	outer := newObject()
	if o.has("tags") {
		outer.setRaw("tags", o.vals["tags"])
		o.del("tags")
	}
	family := strings.Trim(string(o.vals["family"]), `"`)
	for k, v := range map[string]any{
		"taskDefinitionArn":  "arn:aws:ecs:us-east-1:123456789012:task-definition/" + family + ":7",
		"revision":           7,
		"status":             "ACTIVE",
		"requiresAttributes": []map[string]string{{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}},
		"compatibilities":    []string{"EC2", "FARGATE"},
		"registeredAt":       "2026-11-30T10:12:41.214000+00:00",
		"registeredBy":       "arn:aws:iam::123456789012:role/deployer",
	} {
		if err := o.set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	wrapped := newObject()
	wrapped.setRaw("taskDefinition", mustJSON(t, o))
	for _, k := range outer.keys {
		wrapped.setRaw(k, outer.vals[k])
	}
	return mustJSON(t, wrapped)
}

func mustJSON(t *testing.T, v json.Marshaler) []byte {
	t.Helper()
	b, err := v.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorpus protects each realistic task definition of
// testdata/taskdef/corpus: the output matches its golden file, fits the ECS
// model (botocore's, read from Debian's package), starts in an order ECS can
// satisfy, re-protects to identical bytes, and the same task as
// describe-task-definition output protects to the same bytes.
func TestCorpus(t *testing.T) {
	model := loadBotocoreModel(t)
	for name, opts := range corpusOptions {
		t.Run(name, func(t *testing.T) {
			in := readTask(t, filepath.Join("corpus", name+".json"))
			got, rep, err := ProtectJSONReport(context.Background(), in, opts)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", "corpus", name+".json")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, got)
			}
			if probs, err := model.Validate(got); err != nil || len(probs) > 0 {
				t.Errorf("does not fit the ECS model: %v %v", probs, err)
			}
			td, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if err := td.StartOrder(); err != nil {
				t.Errorf("start order: %v", err)
			}
			if len(rep.Protected) == 0 {
				t.Errorf("report protects nothing: %+v", rep)
			}
			again, err := ProtectJSON(context.Background(), got, opts)
			if err != nil {
				t.Fatalf("re-protect: %v", err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("re-protect changed the output:\n%s", again)
			}
			fromDescribe, err := ProtectJSON(context.Background(), describeOutput(t, in), opts)
			if err != nil {
				t.Fatalf("describe output: %v", err)
			}
			if !bytes.Equal(fromDescribe, got) {
				t.Errorf("describe output protects differently:\n%s", fromDescribe)
			}
		})
	}
}

func TestCorpusRefused(t *testing.T) {
	tests := []struct {
		name, file string
		opts       Options
		want       []string
	}{
		{"windows", "windows.json", Options{}, []string{"WINDOWS_SERVER_2022_CORE", "Windows task definitions cannot be protected"}},
		{"arm64 with an amd64-only defender", "arm64.json", Options{}, []string{"runtimePlatform.cpuArchitecture is ARM64", "ghcr.io/taskguard/defender:latest", "--defender-platforms linux/amd64,linux/arm64"}},
		{"arm64 with an arm64-only defender list", "arm64.json", Options{DefenderPlatforms: []string{PlatformAMD64}, DefenderImage: "registry.example.com/defender:1"}, []string{"registry.example.com/defender:1 is declared for linux/amd64 only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readTask(t, filepath.Join("corpus", tt.file))
			for _, doc := range [][]byte{in, describeOutput(t, in)} {
				_, err := ProtectJSON(context.Background(), doc, tt.opts)
				if err == nil {
					t.Fatal("protected")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
			}
		})
	}
}

type containerView struct {
	Name        string            `json:"name"`
	EntryPoint  []string          `json:"entryPoint"`
	DependsOn   []dependency      `json:"dependsOn"`
	VolumesFrom []volumeFrom      `json:"volumesFrom"`
	Log         *logConfiguration `json:"logConfiguration"`
	Environment []keyValue        `json:"environment"`
}

func containersOf(t *testing.T, doc []byte) map[string]json.RawMessage {
	t.Helper()
	var td struct {
		C []json.RawMessage `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(doc, &td); err != nil {
		t.Fatal(err)
	}
	out := map[string]json.RawMessage{}
	for _, raw := range td.C {
		var c struct{ Name string }
		json.Unmarshal(raw, &c)
		var b bytes.Buffer
		json.Compact(&b, raw)
		out[c.Name] = b.Bytes()
	}
	return out
}

// Must show: Envoy + FireLens + app, only the app under the launcher, the
// sidecars byte-for-byte untouched, no dependency cycle, and the report
// saying why the sidecars were left out.
func TestAppMeshFireLensOnlyAppProtected(t *testing.T) {
	in := readTask(t, filepath.Join("corpus", "appmesh-firelens.json"))
	out, rep, err := ProtectJSONReport(context.Background(), in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Protected, []string{"app"}) {
		t.Errorf("protected %v, want [app]", rep.Protected)
	}
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[s.Name] = s.Reason
	}
	if !strings.Contains(reasons["envoy"], "proxyConfiguration") || !strings.Contains(reasons["log_router"], "FireLens") {
		t.Errorf("skip reasons: %v", reasons)
	}
	before, after := containersOf(t, in), containersOf(t, out)
	for _, n := range []string{"envoy", "log_router"} {
		if !bytes.Equal(before[n], after[n]) {
			t.Errorf("skipped container %s changed:\n%s\n%s", n, before[n], after[n])
		}
	}
	var app, def containerView
	json.Unmarshal(after["app"], &app)
	json.Unmarshal(after[DefenderContainerName], &def)
	if !hasLauncherPrefix(app.EntryPoint) {
		t.Errorf("app entryPoint %q", app.EntryPoint)
	}
	// The defender logs through the router (which does not wait for it).
	if def.Log == nil || def.Log.LogDriver != "awsfirelens" {
		t.Errorf("defender log configuration %+v", def.Log)
	}
	td, _ := Parse(out)
	if err := td.StartOrder(); err != nil {
		t.Errorf("start order: %v", err)
	}
	if !strings.Contains(rep.String(), "not protected: envoy: the proxyConfiguration container") {
		t.Errorf("report:\n%s", rep)
	}

	// The router included by name waits for the defender: the defender then
	// logs with awslogs to the router's log group, and there is still no cycle.
	in = bytes.Replace(in, []byte(`"user": "0",`), []byte(`"user": "0", "entryPoint": ["/entrypoint.sh"],`), 1)
	out, rep, err = ProtectJSONReport(context.Background(), in, Options{Include: []string{"log_router"}})
	if err != nil {
		t.Fatal(err)
	}
	after = containersOf(t, out)
	json.Unmarshal(after[DefenderContainerName], &def)
	if def.Log == nil || def.Log.LogDriver != "awslogs" || def.Log.Options["awslogs-group"] != "/ecs/payments-firelens" {
		t.Errorf("defender log configuration with the router protected: %+v", def.Log)
	}
	if !slices.Equal(rep.Protected, []string{"app", "log_router"}) || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "awslogs") {
		t.Errorf("report: %+v", rep)
	}
	td, _ = Parse(out)
	if err := td.StartOrder(); err != nil {
		t.Errorf("start order: %v", err)
	}
	// Left out again, the router is restored exactly.
	back, err := ProtectJSON(context.Background(), out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := ProtectJSON(context.Background(), in, Options{}); !bytes.Equal(back, first) {
		t.Errorf("excluding again does not restore the router:\n%s", back)
	}
}

func TestSelectionOptions(t *testing.T) {
	in := readTask(t, filepath.Join("corpus", "web-worker.json"))
	_, rep, err := ProtectJSONReport(context.Background(), in, Options{Exclude: []string{"worker"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Protected, []string{"web"}) || len(rep.Skipped) != 1 || rep.Skipped[0].Reason != "excluded by name" {
		t.Errorf("exclude: %+v", rep)
	}
	_, rep, err = ProtectJSONReport(context.Background(), in, Options{SkipImages: []string{"*/orders/worker"}})
	if err != nil || !slices.Equal(rep.Protected, []string{"web"}) || !strings.Contains(rep.Skipped[0].Reason, `"*/orders/worker"`) {
		t.Errorf("skip image: %+v %v", rep, err)
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Include: []string{"wrker"}}, `container "wrker" is named to include or exclude, but the task has no such container (it has web, worker)`},
		{Options{Include: []string{"web"}, Exclude: []string{"web"}}, `"web" is both included and excluded`},
		{Options{Exclude: []string{"web", "worker"}}, "no container is left to protect"},
		{Options{SkipImages: []string{"[bad"}}, `image pattern "[bad"`},
	} {
		if _, err := ProtectJSON(context.Background(), in, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestStartOrderErrors(t *testing.T) {
	tests := []struct{ name, task, want string }{
		{"cycle", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"dependsOn":[{"containerName":"b","condition":"START"}]},{"name":"b","image":"i","entryPoint":["x"],"dependsOn":[{"containerName":"a","condition":"START"}]}]}`,
			"dependency cycle a → b → a"},
		{"firelens implicit cycle", `{"family":"f","containerDefinitions":[{"name":"app","image":"i","entryPoint":["x"],"logConfiguration":{"logDriver":"awsfirelens"}},{"name":"router","image":"fluent-bit","firelensConfiguration":{"type":"fluentbit"},"dependsOn":[{"containerName":"app","condition":"START"}]}]}`,
			"dependency cycle app → router → app"},
		{"volumesFrom cycle", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"dependsOn":[{"containerName":"b","condition":"START"}]},{"name":"b","image":"i","essential":false,"volumesFrom":[{"sourceContainer":"a"}],"firelensConfiguration":{"type":"fluentbit"}}]}`,
			"dependency cycle a → b → a"},
		{"unknown volume source", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"volumesFrom":[{"sourceContainer":"ghost"}]}]}`,
			`"a" has volumesFrom "ghost"`},
		{"unknown container", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"dependsOn":[{"containerName":"ghost","condition":"START"}]}]}`,
			`"a" depends on "ghost", which is not a container of the task`},
		{"healthy without health check", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"dependsOn":[{"containerName":"b","condition":"HEALTHY"}]},{"name":"b","image":"i","entryPoint":["x"]}]}`,
			`"b" has no healthCheck`},
		{"success of an essential container", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"dependsOn":[{"containerName":"b","condition":"SUCCESS"}]},{"name":"b","image":"i","entryPoint":["x"]}]}`,
			`"b" is essential`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ProtectJSON(context.Background(), []byte(tt.task), Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDefenderMemory(t *testing.T) {
	task := func(taskMem string, mem int) string {
		return `{"family":"f","memory":"` + taskMem + `","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"memory":` + itoa(mem) + `}]}`
	}
	out, err := ProtectJSON(context.Background(), []byte(task("512", 480)), Options{})
	if err != nil {
		t.Fatalf("480 of 512 MiB leaves the defender its 32: %v", err)
	}
	if !strings.Contains(string(out), `"memoryReservation": 32`) {
		t.Errorf("no memoryReservation:\n%s", out)
	}
	_, err = ProtectJSON(context.Background(), []byte(task("512", 490)), Options{})
	for _, want := range []string{"the task's memory is 512 MiB", "reserve 490 MiB (hard memory: a 490)", "leaves the defender 22 MiB; it needs 32 MiB", "at least 522 MiB"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	// With a WAF port the defender needs more.
	_, err = ProtectJSON(context.Background(), []byte(task("512", 448)), Options{WAFPorts: []uint16{8080}})
	if err == nil || !strings.Contains(err.Error(), "leaves the defender 64 MiB; it needs 128 MiB") {
		t.Errorf("WAF: err = %v", err)
	}
	out, err = ProtectJSON(context.Background(), []byte(task("1 GB", 896)), Options{WAFPorts: []uint16{8080}})
	if err != nil || !strings.Contains(string(out), `"memoryReservation": 128`) {
		t.Errorf("1 GB task with WAF: %v\n%s", err, out)
	}
	if _, err := ProtectJSON(context.Background(), []byte(task("512", 448)), Options{DefenderMemoryReservation: 100}); err == nil {
		t.Error("an explicit reservation that does not fit was accepted")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestConsoleURL(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		plain bool
		want  string
	}{
		{"console.example.com", false, "https://console.example.com"},
		{"console.example.com:8083", false, "https://console.example.com:8083"},
		{"console.example.com:8083", true, "http://console.example.com:8083"},
		{"[::1]:8083", false, "https://[::1]:8083"},
		{"https://c:8083/", true, "https://c:8083"},
		{"http://c:8083", false, "http://c:8083"},
	} {
		got, err := ConsoleURL(tc.addr, tc.plain)
		if err != nil || got != tc.want {
			t.Errorf("ConsoleURL(%q, %v) = %q, %v; want %q", tc.addr, tc.plain, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ftp://c", "https://c/api", "https://u:p@c", "c:99999", "https://"} {
		if got, err := ConsoleURL(bad, false); err == nil {
			t.Errorf("ConsoleURL(%q) = %q, want an error", bad, got)
		}
	}
}
