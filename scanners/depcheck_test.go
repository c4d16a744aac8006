package scanners

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the scanner free of server and sensor code, and
// away from trivy-db's vulnsrc umbrella (its GHSA source runs `go list` at
// init).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test=false", "./...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/taskguard/taskguard/console/",
		"github.com/taskguard/taskguard/agent/",
		"github.com/taskguard/taskguard/action/",
		"github.com/taskguard/taskguard/cli",
		"github.com/aquasecurity/trivy-db/pkg/vulnsrc",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("scanners depend on %s", dep)
			}
		}
	}
}
