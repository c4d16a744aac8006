package fargate

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// botocoreECSModel is where Debian's python3-botocore keeps the ECS API model
// (scripts/install-deps.sh installs it).
const botocoreECSModel = "/usr/lib/python3/dist-packages/botocore/data/ecs/2014-11-13/service-2.json"

// needBotocore skips without python3-botocore, except in CI where a skip
// would hide that the output is not checked against the real model.
func needBotocore(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(botocoreECSModel); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-botocore is not installed (scripts/install-deps.sh installs it): %v", err)
		}
		t.Skipf("python3-botocore is not installed: %v", err)
	}
}

func loadBotocoreModel(t testing.TB) *Model {
	t.Helper()
	needBotocore(t)
	f, err := os.Open(botocoreECSModel)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := LoadServiceModel(f, "RegisterTaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The embedded model is botocore's, trimmed; -update rewrites it.
func TestModelMatchesBotocore(t *testing.T) {
	m := loadBotocoreModel(t)
	got, err := m.MarshalIndent()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("ecsmodel.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, ecsModelJSON) {
		t.Fatalf("ecsmodel.json differs from the RegisterTaskDefinition input of %s (run with -update)", botocoreECSModel)
	}
	emb, err := RegisterTaskDefinitionModel()
	if err != nil {
		t.Fatal(err)
	}
	if emb.Input != "RegisterTaskDefinitionRequest" || len(emb.Shapes) < 50 {
		t.Fatalf("embedded model: input %q, %d shapes", emb.Input, len(emb.Shapes))
	}
}

func TestModelValidate(t *testing.T) {
	m, err := RegisterTaskDefinitionModel()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		want []string // Problem.String(), in order
	}{
		{"valid", `{"family":"f","cpu":"256","containerDefinitions":[{"name":"a","image":"i","memory":512,"essential":true,"command":["x"]}]}`, nil},
		{"null command", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","command":null}]}`, []string{"containerDefinitions[0].command: expected an array, found null"}},
		{"number for a string", `{"family":"f","cpu":256,"containerDefinitions":[]}`, []string{"cpu: expected a string, found an integer"}},
		{"string for an integer", `{"family":"f","containerDefinitions":[{"name":"a","memory":"512"}]}`, []string{"containerDefinitions[0].memory: expected an integer, found a string"}},
		{"fraction for an integer", `{"family":"f","containerDefinitions":[{"name":"a","cpu":0.5}]}`, []string{"containerDefinitions[0].cpu: expected an integer, found a fractional number"}},
		{"missing family", `{"containerDefinitions":[]}`, []string{"family: missing required parameter"}},
		{"null entry in a list", `{"family":"f","containerDefinitions":[{"name":"a","entryPoint":["sh",null]}]}`, []string{"containerDefinitions[0].entryPoint[1]: expected a string, found null"}},
		{"map of strings", `{"family":"f","containerDefinitions":[{"name":"a","dockerLabels":{"x":1}}]}`, []string{"containerDefinitions[0].dockerLabels.x: expected a string, found an integer"}},
		{"empty tag key", `{"family":"f","containerDefinitions":[],"tags":[{"key":"","value":"v"}]}`, []string{"tags[0].key: has 0 characters, at least 1 needed"}},
		{"unknown field", `{"family":"f","containerDefinitions":[],"futureField":1}`, []string{"futureField: unknown parameter (not in the ECS API model)"}},
		{"not an object", `[1]`, []string{"(the task definition): expected an object, found an array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs, err := m.Validate([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range probs {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// botocoreValidate runs botocore's own ParamValidator on each document and
// returns its report per document ("" when valid).
func botocoreValidate(t *testing.T, docs [][]byte) []string {
	t.Helper()
	needBotocore(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3: %v", err)
	}
	const script = `
import json, sys
import botocore.session
from botocore.validate import ParamValidator
model = botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
out = []
for doc in json.load(sys.stdin):
    report = ParamValidator().validate(doc, model)
    out.append(report.generate_report() if report.has_errors() else "")
json.dump(out, sys.stdout)
`
	var in []json.RawMessage
	for _, d := range docs {
		in = append(in, d)
	}
	stdin, _ := json.Marshal(in)
	cmd := exec.Command("python3", "-c", script)
	// Debian's botocore, not one a Python environment may shadow it with.
	cmd.Env = append(os.Environ(), "PYTHONPATH=/usr/lib/python3/dist-packages", "PYTHONNOUSERSITE=1")
	if p, err := exec.LookPath("/usr/bin/python3"); err == nil {
		cmd.Path = p
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("botocore validation: %v\n%s", err, stderr.String())
	}
	var reports []string
	if err := json.Unmarshal(out, &reports); err != nil || len(reports) != len(docs) {
		t.Fatalf("botocore validation output %q: %v", out, err)
	}
	return reports
}

// Every golden file passes both the Go validator and botocore's own; the
// seeds' sample as written (with "command": null) fails both, so neither
// check is vacuous.
func TestGoldenFilesPassBotocore(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	corpus, _ := filepath.Glob(filepath.Join("testdata", "golden", "corpus", "*.json"))
	files = append(files, corpus...)
	if err != nil || len(files) < 10 {
		t.Fatalf("golden files: %d, %v", len(files), err)
	}
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	docs = append(docs, readTask(t, "seeds-sample.json"))
	reports := botocoreValidate(t, docs)
	m := loadBotocoreModel(t)
	for i, f := range files {
		if reports[i] != "" {
			t.Errorf("%s: botocore: %s", f, reports[i])
		}
		probs, err := m.Validate(docs[i])
		if err != nil || len(probs) > 0 {
			t.Errorf("%s: %v %v", f, probs, err)
		}
	}
	last := reports[len(reports)-1]
	if !strings.Contains(last, "containerDefinitions[0].command") {
		t.Errorf("negative control: botocore accepted the seeds' sample with its null command: %q", last)
	}
	if probs, _ := m.Validate(docs[len(docs)-1]); len(probs) == 0 {
		t.Errorf("negative control: the Go validator accepted the seeds' sample with its null command")
	}
}
