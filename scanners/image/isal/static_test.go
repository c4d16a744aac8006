package isal

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDefenderStaysStatic: the defender is copied into app containers as a
// static executable (agent/image refuses anything else), so it must not
// link purego — which makes a CGO_ENABLED=0 binary dynamically linked —
// through this package; the taskguard command does.
func TestDefenderStaysStatic(t *testing.T) {
	deps := func(pkg string) string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return string(out)
	}
	const purego = "\ngithub.com/ebitengine/purego\n"
	if d := deps("github.com/taskguard/taskguard/cmd/taskguard-defender"); strings.Contains(d, purego) || strings.Contains(d, "/scanners/image/isal\n") {
		t.Fatal("taskguard-defender links purego or scanners/image/isal: it would no longer be static")
	}
	if d := deps("github.com/taskguard/taskguard/cmd/taskguard"); !strings.Contains(d, "\ngithub.com/taskguard/taskguard/scanners/image/isal\n") {
		t.Fatal("taskguard does not import scanners/image/isal: its scans would not use ISA-L")
	}
}
