package action

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/taskguard/taskguard/cli/clitest"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// runBound is how long a test waits for the step before it fails: a step
// that stalls past its timeout input fails the test instead of hanging it.
const runBound = 60 * time.Second

// runBounded runs the step, failing the test when it does not end within
// runBound (the stalled run is left behind; the test has failed).
func (s *step) runBounded(t *testing.T) (int, error) {
	t.Helper()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := s.run(t)
		done <- result{code, err}
	}()
	select {
	case r := <-done:
		return r.code, r.err
	case <-time.After(runBound):
		t.Fatalf("the step did not end within %s: nothing bounded the run", runBound)
		return 0, nil
	}
}

// TestTimeoutInput: the timeout input bounds the whole job. A registry that
// answers an image's manifest and config but never sends its layer's body,
// and a DB mirror that never answers, fail the step (exit 2) with an error
// that says how to raise the input, and write no report or output; the
// registry's other image passes under the same bound.
func TestTimeoutInput(t *testing.T) {
	reg := clitest.StartRegistry(t)
	image := func(files map[string][]byte) v1.Image {
		dir := t.TempDir()
		scantest.WriteFiles(t, dir, files)
		img, err := mutate.AppendLayers(empty.Image, scantest.DirLayer(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	good := image(map[string][]byte{"etc/os-release": []byte("ID=debian\nVERSION_ID=\"12\"\n"), "var/lib/dpkg/status": nil,
		"app/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.20"}`)})
	stuck := image(map[string][]byte{"etc/os-release": []byte("ID=debian\nVERSION_ID=\"12\"\n"), "app/stuck.txt": []byte("never sent")})
	goodRef := reg.Push(t, "shop/web:1.4", good)
	stuckRef := reg.Push(t, "shop/stuck:1", stuck)
	reg.StallLayers(t, stuck)
	reg.StallManifests("mirror/stuck-db")
	db := vulnDB(t)

	const hint = "a slow registry or DB mirror, or a large image, may need more time, e.g. timeout: 10m0s"
	tests := []struct {
		name   string
		inputs map[string]string
		stall  bool
		code   int
		want   []string
	}{
		{"a layer whose body never comes", map[string]string{"image": stuckRef, "cache-dir": db, "offline": "true", "timeout": "2s"},
			true, program.ExitError, []string{`gave up after 2s (input "timeout"): `, "/shop/stuck:1: layer sha256:", "context deadline exceeded", hint}},
		{"a DB mirror that never answers", map[string]string{"image": goodRef, "cache-dir": t.TempDir(), "db-repository": reg.Host + "/mirror/stuck-db:2", "timeout": "2s"},
			true, program.ExitError, []string{`gave up after 2s (input "timeout"): `, "fetch vulnerability DB", hint}},
		{"the registry's other image", map[string]string{"image": goodRef, "cache-dir": db, "offline": "true", "timeout": "2s"},
			false, program.ExitOK, nil},
		{"no limit", map[string]string{"image": goodRef, "cache-dir": db, "offline": "true", "timeout": "0"},
			false, program.ExitOK, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			junit := filepath.Join(t.TempDir(), "junit.xml")
			tt.inputs["junit"] = junit
			tt.inputs["layer-cache"] = "false"
			s := newStep(t, tt.inputs)
			before := reg.Stalled()
			code, err := s.runBounded(t)
			if code != tt.code {
				t.Fatalf("code %d, want %d: %v\n%s", code, tt.code, err, s.log)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "did not stop within") {
				// Run's last resort: the bound's context did not reach the
				// call that waited on the registry.
				t.Errorf("the run ignored its context and was abandoned: %v", err)
			}
			if stalled := reg.Stalled() > before; stalled != tt.stall {
				t.Errorf("a request stalled: %v, want %v", stalled, tt.stall)
			}
			_, statErr := os.Stat(junit)
			result := s.outputs(t)["result"]
			if tt.code == program.ExitOK {
				if statErr != nil || result != "passed" {
					t.Errorf("junit: %v, result output %q", statErr, result)
				}
			} else if !os.IsNotExist(statErr) || result != "" {
				// A job that gave up claims nothing.
				t.Errorf("a step that gave up wrote its JUnit report (stat: %v) or the result output %q", statErr, result)
			}
		})
	}
}
