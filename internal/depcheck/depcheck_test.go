// Package depcheck holds a guardrail test: the parts of taskguard import only
// what their job needs (DESIGN.md: scanners never import console, agent or
// action; the shared policy and API packages pull in no server code).
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/taskguard/taskguard/"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// violations lists the module packages pkg depends on that fall under a
// forbidden path (the path itself or anything below it).
func violations(t *testing.T, pkg string, forbidden []string) []string {
	var bad []string
	for _, d := range deps(t, pkg) {
		rel, ok := strings.CutPrefix(d, module)
		if !ok {
			continue
		}
		for _, f := range forbidden {
			if rel == f || strings.HasPrefix(rel, f+"/") {
				bad = append(bad, d)
			}
		}
	}
	return bad
}

var serverParts = []string{"console/server", "console/store", "console/auth", "agent", "action", "cli"}

func TestImportBoundaries(t *testing.T) {
	tests := []struct {
		pkg       string
		forbidden []string
	}{
		{"scanners/...", []string{"console", "agent", "action", "cli"}},
		{"console/policy", append([]string{"console/api", "console/fargate", "scanners"}, serverParts...)},
		{"console/api", append([]string{"console/fargate", "scanners"}, serverParts...)},
		{"console/fargate", append([]string{"scanners"}, serverParts...)},
		{"agent/...", []string{"console/server", "console/store", "console/auth", "action", "cli"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			for _, d := range violations(t, tt.pkg, tt.forbidden) {
				t.Errorf("%s depends on %s", tt.pkg, d)
			}
		})
	}
}

// The check itself can fail: the CLI does import the protect transform.
func TestViolationsFindsAnImport(t *testing.T) {
	if got := violations(t, "cli", []string{"console/fargate"}); len(got) == 0 {
		t.Fatal("no violation found for cli -> console/fargate")
	}
}
