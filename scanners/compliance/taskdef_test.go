package compliance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func checkIDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.CheckID+" "+f.Target)
	}
	return ids
}

func TestCheckTask(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string // "ID target"
	}{
		{
			name: "hardened",
			json: `{"family":"ok","networkMode":"awsvpc","cpu":"256","memory":"512","containerDefinitions":[{"name":"app",
				"image":"r/app@sha256:0123","user":"1000","readonlyRootFilesystem":true,"essential":true,
				"logConfiguration":{"logDriver":"awslogs"},"environment":[{"name":"DB_PASSWORD_ARN","value":"arn:aws:secretsmanager:x"}]}]}`,
			want: nil,
		},
		{
			name: "everything wrong",
			json: `{"family":"bad","networkMode":"host","pidMode":"host","containerDefinitions":[{"name":"app","image":"nginx:latest",
				"user":"root","privileged":true,"essential":false,
				"linuxParameters":{"capabilities":{"add":["SYS_PTRACE","CAP_NET_ADMIN"]}},
				"portMappings":[{"containerPort":80,"hostPort":8080}],
				"environment":[{"name":"AWS_ACCESS_KEY_ID","value":"AKIAIOSFODNN7EXAMPLE"},{"name":"DB_PASSWORD","value":"hunter22"},{"name":"LOG_LEVEL","value":"debug"}]}]}`,
			want: []string{
				"TG-TASK-001 container app", "TG-TASK-002 container app", "TG-TASK-003 container app",
				"TG-TASK-004 container app", "TG-TASK-005 container app", "TG-TASK-005 container app",
				"TG-TASK-006 container app", "TG-TASK-007 container app", "TG-TASK-008 task bad",
				"TG-TASK-009 task bad", "TG-TASK-009 task bad", "TG-TASK-009 container app", "TG-TASK-010 task bad",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := ParseTask([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			got := checkIDs(CheckTask(task))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// Secrets are reported by name; the value never appears in a finding.
func TestSecretValueNeverReported(t *testing.T) {
	task, err := ParseTask([]byte(`{"containerDefinitions":[{"name":"a","image":"i","environment":[
		{"name":"GITHUB","value":"ghp_0123456789abcdefghijABCDEFGHIJ012345"},{"name":"API_TOKEN","value":"s3cr3t-value"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, f := range CheckTask(task) {
		s := fmt.Sprintf("%+v", f)
		if strings.Contains(s, "ghp_0123") || strings.Contains(s, "s3cr3t") {
			t.Errorf("finding leaks the secret: %s", s)
		}
		if f.CheckID == "TG-TASK-005" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("got %d secret findings, want 2", n)
	}
}

func TestSecretKind(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", "an AWS access key ID"},
		{"ANYTHING", "-----BEGIN RSA PRIVATE KEY-----\nMIIE", "a private key"},
		{"DB_PASSWORD", "hunter22", "a value under a credential-like name"},
		{"DB_PASSWORD_FILE", "/run/secrets/db", ""},
		{"TOKEN_URL", "https://auth.example.com/token", ""},
		{"SECRET", "arn:aws:secretsmanager:us-east-1:1:secret:x", ""},
		{"LOG_LEVEL", "debug", ""},
		{"PASSWORD", "", ""},
	}
	for _, tt := range tests {
		if got := secretKind(tt.name, tt.value); got != tt.want {
			t.Errorf("secretKind(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// The shared task definitions parse, and the protected defender is skipped.
func TestCheckTaskFixtures(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/taskdef/*.json")
	protected, _ := filepath.Glob("../../console/fargate/testdata/golden/*.json")
	files = append(files, protected...)
	if len(files) < 8 {
		t.Fatalf("fixtures: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		task, err := ParseTask(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, fd := range CheckTask(task) {
			if fd.Target == "container taskguard-defender" {
				t.Errorf("%s: defender checked: %+v", f, fd)
			}
		}
	}
	task, _ := ParseTask([]byte(`{"taskDefinition":{"family":"d","containerDefinitions":[{"name":"api","image":"x@sha256:1"}]}}`))
	if task == nil || task.Family != "d" {
		t.Errorf("describe output not unwrapped: %+v", task)
	}
	if _, err := ParseTask([]byte(`{"family":"x"}`)); err == nil {
		t.Error("no containers: no error")
	}
	if _, err := ParseTask([]byte(`nope`)); err == nil {
		t.Error("not JSON: no error")
	}
}
