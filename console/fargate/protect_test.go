package fargate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const taskdefDir = "../../testdata/taskdef"

func readTask(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(taskdefDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixedImages serves image configs from a map; unknown images are an error.
// Tests of the real registry path use RegistryImages against pkg/registry.
type fixedImages map[string]ImageConfig

func (f fixedImages) ImageConfig(_ context.Context, ref, _ string) (ImageConfig, error) {
	cfg, ok := f[ref]
	if !ok {
		return ImageConfig{}, errors.New("no such image " + ref)
	}
	return cfg, nil
}

func TestProtectGolden(t *testing.T) {
	tests := []struct {
		name  string
		input string
		opts  Options
	}{
		{"seeds-sample", "seeds-sample.json", Options{ConsoleAddr: "console.example.com:8083", AgentToken: "agent-token-for-tests"}},
		{"multi-container", "multi-container.json", Options{ConsoleAddr: "https://console.internal:8083", AgentTokenSecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:taskguard/agent-x1y2z3", DefenderImage: "123456789012.dkr.ecr.us-east-1.amazonaws.com/taskguard/defender:1.0.0", WAFPorts: []uint16{8080}}},
		{"describe-output", "describe-output.json", Options{ConsoleAddr: "console.example.com", AgentToken: "agent-token-for-tests"}},
		{"secrets-healthcheck", "secrets-healthcheck.json", Options{ConsoleAddr: "console.example.com", AgentToken: "agent-token-for-tests", DefenderHealthCheck: true}},
		{"no-entrypoint-extracted", "no-entrypoint.json", Options{ExtractEntrypoint: true, Images: fixedImages{
			"registry.example.com/reports:1.0": {Entrypoint: []string{"/usr/bin/reports"}, Cmd: []string{"--help"}},
		}}},
		{"offline-no-console", "seeds-sample.json", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProtectJSON(context.Background(), readTask(t, tt.input), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", tt.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
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
			// Protecting the protected task again changes nothing.
			again, err := ProtectJSON(context.Background(), got, tt.opts)
			if err != nil {
				t.Fatalf("re-protect: %v", err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("protect is not idempotent:\n%s", again)
			}
		})
	}
}

// The seeds' sample: the app's argv becomes the launcher, "--", then entry.sh.
func TestProtectSeedsSample(t *testing.T) {
	out, err := ProtectJSON(context.Background(), readTask(t, "seeds-sample.json"), Options{ConsoleAddr: "console:8083", AgentToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	var td struct {
		Family     string `json:"family"`
		Containers []struct {
			Name        string            `json:"name"`
			Image       string            `json:"image"`
			EntryPoint  []string          `json:"entryPoint"`
			Command     []string          `json:"command"`
			Essential   bool              `json:"essential"`
			Environment []keyValue        `json:"environment"`
			VolumesFrom []volumeFrom      `json:"volumesFrom"`
			DependsOn   []dependency      `json:"dependsOn"`
			Linux       json.RawMessage   `json:"linuxParameters"`
			Labels      map[string]string `json:"dockerLabels"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(out, &td); err != nil {
		t.Fatal(err)
	}
	if len(td.Containers) != 2 {
		t.Fatalf("got %d containers, want app + defender", len(td.Containers))
	}
	app, def := td.Containers[0], td.Containers[1]
	if got, want := strings.Join(append(app.EntryPoint, app.Command...), " "), "/var/lib/taskguard/defender entrypoint -- entry.sh"; got != want {
		t.Errorf("app argv = %q, want %q", got, want)
	}
	if !reflect.DeepEqual(app.VolumesFrom, []volumeFrom{{DefenderContainerName, true}}) {
		t.Errorf("volumesFrom = %+v", app.VolumesFrom)
	}
	if !reflect.DeepEqual(app.DependsOn, []dependency{{DefenderContainerName, "START"}}) {
		t.Errorf("dependsOn = %+v", app.DependsOn)
	}
	if !strings.Contains(string(app.Linux), `"SYS_PTRACE"`) {
		t.Errorf("linuxParameters = %s", app.Linux)
	}
	wantEnv := []keyValue{{EnvContainer, "twistlock-fargate-task"}, {EnvImage, "matthewabq/twistlock-fargate-auto"}, {EnvTask, "twistlock-fargate-task"}}
	if !reflect.DeepEqual(app.Environment, wantEnv) {
		t.Errorf("app environment = %+v, want %+v", app.Environment, wantEnv)
	}
	if def.Name != DefenderContainerName || !def.Essential || def.Image != DefaultDefenderImage {
		t.Errorf("defender = %+v", def)
	}
	wantDefEnv := []keyValue{{EnvTask, "twistlock-fargate-task"}, {EnvConsole, "https://console:8083"}, {EnvAgentToken, "tok"}}
	if !reflect.DeepEqual(def.Environment, wantDefEnv) {
		t.Errorf("defender environment = %+v, want %+v", def.Environment, wantDefEnv)
	}
}

// Fields taskguard does not know survive, in meaning and in order.
func TestUnknownFieldsSurvive(t *testing.T) {
	in := `{"family":"f","futureField":{"nested":[1,2.50,"x"]},"containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"shinyNewKnob":true,"resourceRequirements":[{"type":"GPU","value":"1"}]}],"pidMode":"task"}`
	out, err := ProtectJSON(context.Background(), []byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{`"futureField": {`, `2.50`, `"shinyNewKnob": true`, `"pidMode": "task"`, `"type": "GPU"`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lost %s:\n%s", want, s)
		}
	}
	if strings.Index(s, `"family"`) > strings.Index(s, `"futureField"`) || strings.Index(s, `"futureField"`) > strings.Index(s, `"pidMode"`) {
		t.Errorf("key order changed:\n%s", s)
	}
}

func TestDescribeOutputDropsReadOnlyFields(t *testing.T) {
	out, err := ProtectJSON(context.Background(), readTask(t, "describe-output.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(readOnlyFields, "taskDefinition") {
		if _, ok := m[f]; ok {
			t.Errorf("output still has read-only field %q", f)
		}
	}
	if !strings.Contains(string(m["tags"]), "cost-center") {
		t.Errorf("describe output's tags were lost: %s", m["tags"])
	}
}

func TestProtectErrors(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		opts    Options
		wantErr string
		invalid bool
	}{
		{"empty", ``, Options{}, "the input is empty", true},
		{"not json", `family: x`, Options{}, "invalid JSON at line 1, column 3: invalid character 'm'", true},
		{"truncated", `{"family":"x","containerDefinitions":[`, Options{}, "unexpected end of input", true},
		{"array", `[1,2]`, Options{}, "expected a JSON object, found an array", true},
		{"trailing data", `{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"]}]} {}`, Options{}, "unexpected data after the JSON object", true},
		{"no containers", `{"family":"x"}`, Options{}, "no containerDefinitions", true},
		{"empty containers", `{"family":"x","containerDefinitions":[]}`, Options{}, "no containerDefinitions", true},
		{"containers not array", `{"containerDefinitions":{"name":"a"}}`, Options{}, `field "containerDefinitions": expected []json.RawMessage, found a JSON object`, true},
		{"container not object", `{"containerDefinitions":["web"]}`, Options{}, "containerDefinitions[0]: expected a JSON object, found a string", true},
		{"no name", `{"containerDefinitions":[{"image":"i"}]}`, Options{}, "containerDefinitions[0] has no name", true},
		{"bad name", `{"containerDefinitions":[{"name":"a b","image":"i"}]}`, Options{}, `name "a b" may hold only`, true},
		{"no image", `{"containerDefinitions":[{"name":"a","entryPoint":["x"]}]}`, Options{}, `container "a" has no image`, true},
		{"entryPoint not strings", `{"containerDefinitions":[{"name":"a","image":"i","entryPoint":"sh"}]}`, Options{}, `container "a": field "entryPoint": expected []string, found a JSON string`, true},
		{"duplicate names", `{"containerDefinitions":[{"name":"a","image":"i"},{"name":"a","image":"j"}]}`, Options{}, `[0] and [1] are both named "a"`, true},
		{"duplicate keys", `{"family":"a","family":"b","containerDefinitions":[]}`, Options{}, `duplicate key "family"`, true},
		{"reserved name", `{"containerDefinitions":[{"name":"taskguard-defender","image":"i","entryPoint":["x"]}]}`, Options{}, `"taskguard-defender" is reserved`, true},
		{"no entryPoint", `{"containerDefinitions":[{"name":"web","image":"nginx"}]}`, Options{}, `container "web" has no entryPoint: add the image's ENTRYPOINT`, true},
		{"image has nothing", `{"containerDefinitions":[{"name":"web","image":"scratch-app"}]}`, Options{ExtractEntrypoint: true, Images: fixedImages{"scratch-app": {}}}, `image scratch-app has neither ENTRYPOINT nor CMD`, true},
		{"image unreachable", `{"containerDefinitions":[{"name":"web","image":"gone"}]}`, Options{ExtractEntrypoint: true, Images: fixedImages{}}, `container "web": read ENTRYPOINT from image gone: no such image gone`, false},
		{"console without credential", `{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"]}]}`, Options{ConsoleAddr: "c"}, "needs an agent credential", false},
		{"two credentials", `{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"]}]}`, Options{AgentToken: "t", AgentTokenSecretARN: "arn:aws:ssm:x"}, "not both", false},
		{"secret not arn", `{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"]}]}`, Options{AgentTokenSecretARN: "my-secret"}, "is not an ARN", false},
		{"bad linuxParameters", `{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"linuxParameters":[]}]}`, Options{}, `container "a": linuxParameters: expected a JSON object, found an array`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ProtectJSON(context.Background(), []byte(tt.input), tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrInvalidTask); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalidTask) = %v, want %v (err: %v)", got, tt.invalid, err)
			}
		})
	}
}

// An image without ENTRYPOINT: the task's command (or the image's CMD) is
// what runs, after the launcher; protecting again keeps it that way.
func TestExtractEntrypointCmdOnly(t *testing.T) {
	in := `{"family":"f","containerDefinitions":[{"name":"a","image":"cmd-only"}]}`
	imgs := fixedImages{"cmd-only": {Cmd: []string{"/bin/sh", "-c", "serve"}}}
	out, err := ProtectJSON(context.Background(), []byte(in), Options{ExtractEntrypoint: true, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	td, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	c := td.Container("a")
	if got := strings.Join(append(c.EntryPoint(), c.Command()...), " "); got != "/var/lib/taskguard/defender entrypoint -- /bin/sh -c serve" {
		t.Errorf("argv = %q", got)
	}
	again, err := ProtectJSON(context.Background(), out, Options{})
	if err != nil {
		t.Fatalf("re-protect without extraction: %v", err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("not idempotent:\n%s\n%s", out, again)
	}
}

func TestProtectYAML(t *testing.T) {
	in := "family: web\ncontainerDefinitions:\n- name: web\n  image: nginx:1.27\n  entryPoint: [\"/docker-entrypoint.sh\"]\n  command: [nginx, -g, daemon off;]\n"
	out, err := ProtectYAML(context.Background(), []byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- /var/lib/taskguard/defender\n", "- entrypoint\n", "- --\n", "- /docker-entrypoint.sh\n", "name: taskguard-defender\n", "- daemon off;\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("YAML output lacks %q:\n%s", want, out)
		}
	}
	if _, err := ProtectYAML(context.Background(), []byte("family: [unclosed"), Options{}); err == nil || !errors.Is(err, ErrInvalidTask) || !strings.Contains(err.Error(), "invalid YAML") {
		t.Errorf("bad YAML: err = %v", err)
	}
}
