package action

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"
)

func newAction(t *testing.T, inputs map[string]string) (*githubactions.Action, string, *bytes.Buffer) {
	t.Helper()
	outFile := filepath.Join(t.TempDir(), "github_output")
	if err := os.WriteFile(outFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GITHUB_OUTPUT": outFile}
	for k, v := range inputs {
		env["INPUT_"+strings.ToUpper(strings.ReplaceAll(k, " ", "_"))] = v
	}
	var log bytes.Buffer
	gha := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(&log))
	return gha, outFile, &log
}

func TestRunProtectsTask(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tg_fargate.json")
	gha, outFile, log := newAction(t, map[string]string{
		"task-definition":       "../testdata/taskdef/seeds-sample.json",
		"protected-task-output": out,
		"console-addr":          "console.example.com:8083",
		"agent-token":           "s3cret-agent-token",
	})
	if err := Run(context.Background(), gha); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"/var/lib/taskguard/defender"`) {
		t.Fatalf("protected task: %v\n%s", err, b)
	}
	outputs, _ := os.ReadFile(outFile)
	if !strings.Contains(string(outputs), "protected-task-definition<<") || !strings.Contains(string(outputs), out) {
		t.Errorf("GITHUB_OUTPUT = %q", outputs)
	}
	if !strings.Contains(log.String(), "::add-mask::s3cret-agent-token") {
		t.Errorf("agent token not masked; log:\n%s", log)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		inputs  map[string]string
		wantErr string
	}{
		{"no task", map[string]string{}, `input "task-definition" is required`},
		{"missing file", map[string]string{"task-definition": "nope.json"}, "read task definition: open nope.json"},
		{"bad bool", map[string]string{"task-definition": "x", "extract-entrypoint": "yes please"}, `input "extract-entrypoint": "yes please" is not true or false`},
		{"no entrypoint", map[string]string{"task-definition": "../testdata/taskdef/no-entrypoint.json", "protected-task-output": filepath.Join(t.TempDir(), "o.json")}, `container "reports" has no entryPoint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gha, _, _ := newAction(t, tt.inputs)
			err := Run(context.Background(), gha)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
