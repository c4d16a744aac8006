package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/taskguard/taskguard/cli/clitest"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// TestTimeout: a registry that answers an image's manifest and config but
// never sends its layer's body, and a DB mirror that never answers its
// manifest, end image scan, ci and db update with exit code 2 and a message
// that says what timed out and how to raise --timeout; the same registry's
// other image and DB scan and download under the same bound. task protect
// --extract-entrypoint gives up likewise on a repository whose manifests
// never come (it had no --timeout), and reads the other image's.
func TestTimeout(t *testing.T) {
	reg := clitest.StartRegistry(t)
	stuckImg, err := mutate.AppendLayers(empty.Image, layerFromFiles(t, map[string][]byte{
		"etc/os-release": []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"app/stuck.txt":  []byte("never sent"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	goodRef := reg.Push(t, "shop/web:1.4", lodashImage(t))
	stuckRef := reg.Push(t, "shop/stuck:1", stuckImg)
	reg.StallLayers(t, stuckImg)
	db := buildDB(t)
	dbRef := reg.Push(t, "mirror/trivy-db:2", scantest.DBArtifact(t, db, vulndb.LayerMediaType))
	reg.StallManifests("mirror/stuck-db")
	stuckDB := reg.Host + "/mirror/stuck-db:2"

	dir := t.TempDir()
	junit, report := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "report.json")
	// Task definitions whose container has no entryPoint: task protect
	// --extract-entrypoint reads it from the image, in a repository whose
	// manifests never come or from an image that has one.
	withEntrypoint, err := mutate.Config(lodashImage(t), v1.Config{Entrypoint: []string{"/app/run"}})
	if err != nil {
		t.Fatal(err)
	}
	entrypointRef := reg.Push(t, "shop/entry:1", withEntrypoint)
	reg.StallManifests("shop/stuck-entry")
	task := func(name, image string) string {
		p := filepath.Join(dir, name)
		body := `{"family": "reports", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
  "containerDefinitions": [{"name": "reports", "image": "` + image + `", "essential": true}]}`
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stuckTask, entryTask := task("stuck-task.json", reg.Host+"/shop/stuck-entry:1"), task("entry-task.json", entrypointRef)
	const hint = "a slow registry or DB mirror, or a large image, may need more time, e.g. --timeout 10m0s"
	tests := []struct {
		name  string
		args  []string
		stall bool // the command must reach a stalled request and give up there
		code  int
		want  []string
	}{
		{
			name:  "image scan of a layer whose body never comes",
			args:  []string{"image", "scan", stuckRef, "--format", "cyclonedx", "--cache-dir", t.TempDir(), "--timeout", "2s"},
			stall: true, code: program.ExitError,
			want: []string{"taskguard: image scan: gave up after 2s (--timeout): ", "/shop/stuck:1: layer sha256:", "context deadline exceeded", hint},
		},
		{
			name:  "ci of a layer whose body never comes writes no report",
			args:  []string{"ci", "--image", stuckRef, "--cache-dir", db, "--skip-db-update", "--junit", junit, "--json", report, "--timeout", "2s"},
			stall: true, code: program.ExitError,
			want: []string{"taskguard: ci: gave up after 2s (--timeout): ", "/shop/stuck:1: layer sha256:", "context deadline exceeded", hint},
		},
		{
			name:  "db update from a mirror that never answers the manifest",
			args:  []string{"db", "update", "--db-repository", stuckDB, "--cache-dir", t.TempDir(), "--timeout", "2s"},
			stall: true, code: program.ExitError,
			want: []string{"taskguard: db update: gave up after 2s (--timeout): fetch vulnerability DB", "context deadline exceeded", hint},
		},
		{
			name:  "image scan updating its DB from a mirror that never answers",
			args:  []string{"image", "scan", goodRef, "--db-repository", stuckDB, "--cache-dir", t.TempDir(), "--timeout", "2s"},
			stall: true, code: program.ExitError,
			want: []string{"taskguard: image scan: gave up after 2s (--timeout): update the vulnerability DB", hint},
		},
		{
			name: "image scan of the registry's other image",
			args: []string{"image", "scan", goodRef, "--format", "cyclonedx", "--cache-dir", t.TempDir(), "--timeout", "2s"},
			code: program.ExitOK, want: []string{`"name": "lodash"`},
		},
		{
			name: "ci of the registry's other image",
			args: []string{"ci", "--image", goodRef, "--cache-dir", db, "--skip-db-update", "--format", "json", "--timeout", "2s"},
			code: program.ExitOK, want: []string{`"result": "passed"`, "CVE-2021-23337"},
		},
		{
			name: "db update from the registry's other mirror",
			args: []string{"db", "update", "--db-repository", dbRef, "--cache-dir", t.TempDir(), "--timeout", "2s"},
			code: program.ExitOK, want: []string{"vulnerability DB updated"},
		},
		{
			name:  "task protect reading the entrypoint of an image whose manifest never comes",
			args:  []string{"task", "protect", stuckTask, "--extract-entrypoint", "--timeout", "2s"},
			stall: true, code: program.ExitError,
			want: []string{"taskguard: task protect: gave up after 2s (--timeout): ", "/shop/stuck-entry:1", "context deadline exceeded", hint},
		},
		{
			name: "task protect reading the entrypoint of the registry's other image",
			args: []string{"task", "protect", entryTask, "--extract-entrypoint", "--timeout", "2s"},
			code: program.ExitOK, want: []string{`"/var/lib/taskguard/defender",`, `"/app/run"`},
		},
		{
			name: "timeout 0 is no limit",
			args: []string{"image", "scan", goodRef, "--format", "cyclonedx", "--cache-dir", t.TempDir(), "--timeout", "0"},
			code: program.ExitOK, want: []string{`"name": "lodash"`},
		},
		{
			name: "a negative timeout is refused",
			args: []string{"ci", "--image", goodRef, "--timeout", "-1s"},
			code: program.ExitError, want: []string{"--timeout -1s: want a duration such as 10m or 1h30m, or 0 for no limit"},
		},
		{
			name: "sbom scan takes the flag",
			args: []string{"sbom", "scan", "--help"},
			code: program.ExitOK, want: []string{"--timeout duration", "(default 10m0s)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reg.Stalled()
			r := runTaskguard(t, "", nil, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", w, r.stdout, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "did not stop within") {
				// Run's last resort: the bound's context did not reach the
				// call that waited on the registry.
				t.Errorf("the run ignored its context and was abandoned: %s", r.stderr)
			}
			if stalled := reg.Stalled() > before; stalled != tt.stall {
				t.Errorf("a request stalled: %v, want %v", stalled, tt.stall)
			}
		})
	}
	// A run that gave up claims nothing: no JUnit or JSON report says it passed.
	for _, p := range []string{junit, report} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s was written by a run that timed out (stat: %v)", p, err)
		}
	}
}
