package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/cli/localrun/testimage"
	"github.com/taskguard/taskguard/internal/testenv"
)

func TestTaskRunLocalCLI(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "dependsOn": [{"containerName": "a", "condition": "START"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"task", "run-local", filepath.Join(dir, "nope.json")}, "no such file"},
		{"cycle", []string{"task", "run-local", bad}, "cycle: a -> a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runTaskguard(t, "", nil, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d stderr %q, want 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}

	testenv.RequireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		testenv.Skip(t, "needs podman (apt-get install podman runc catatonit slirp4netns)")
	}
	archive := testimage.Build(t, "localhost/taskguard-test/busybox:cli", testimage.Spec{})
	task := filepath.Join(dir, "task.json")
	if err := os.WriteFile(task, []byte(`{"family": "cli-run-local", "containerDefinitions": [
	  {"name": "main", "image": "taskguard-test/main:1", "entryPoint": ["/bin/sh", "-c"], "command": ["echo hello from $WHO; exit 4"],
	   "environment": [{"name": "WHO", "value": "the pod"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTaskguard(t, "", nil, "task", "run-local", task, "--image-archive", "taskguard-test/main:1="+archive, "--stop-timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stdout, "main | hello from the pod") || !strings.Contains(r.stderr, `essential container "main" exited with code 4`) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}
