package isal

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStaticPrograms: the programs that must stay static executables do
// not link purego — which makes a CGO_ENABLED=0 binary dynamically linked
// against glibc — through this package: the defender (copied into app
// containers; agent/image refuses anything else), the GitHub Action's
// binary (it runs in job containers too, Alpine's among them) and
// taskguard built with -tags nodlopen (the release's taskguard-static).
// The taskguard command imports the package (ISA-L when libisal2 is
// installed).
func TestStaticPrograms(t *testing.T) {
	deps := func(pkg string, args ...string) string {
		args = append(append([]string{"list", "-deps"}, args...), pkg)
		cmd := exec.Command("go", args...)
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %v: %v", args, err)
		}
		return "\n" + string(out)
	}
	const purego = "\ngithub.com/ebitengine/purego\n"
	const isal = "\ngithub.com/taskguard/taskguard/scanners/image/isal\n"
	cases := []struct {
		name, pkg string
		args      []string
		dynamic   bool
	}{
		{"taskguard-defender", "github.com/taskguard/taskguard/cmd/taskguard-defender", nil, false},
		{"taskguard-action", "github.com/taskguard/taskguard/cmd/taskguard-action", nil, false},
		{"taskguard -tags nodlopen", "github.com/taskguard/taskguard/cmd/taskguard", []string{"-tags", "nodlopen"}, false},
		{"taskguard", "github.com/taskguard/taskguard/cmd/taskguard", nil, true},
	}
	for _, c := range cases {
		d := deps(c.pkg, c.args...)
		if got := strings.Contains(d, purego); got != c.dynamic {
			t.Errorf("%s links purego: %v, want %v (it would not be static, or would not load ISA-L)", c.name, got, c.dynamic)
		}
		if c.dynamic && !strings.Contains(d, isal) {
			t.Errorf("%s does not import scanners/image/isal: its scans would not use ISA-L", c.name)
		}
		if c.name != "taskguard -tags nodlopen" && !c.dynamic && strings.Contains(d, isal) {
			t.Errorf("%s imports scanners/image/isal", c.name)
		}
	}
}
