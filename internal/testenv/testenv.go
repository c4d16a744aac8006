// Package testenv finds what taskguard's tests share: the repository root, the
// project's ../shared folder (corpora and seeds), and whether the test runs as
// root. It is imported only by tests.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory that holds go.mod, walking up from the test's
// working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// SharedDir returns the project's shared folder: $TASKGUARD_SHARED, or
// ../shared beside the repository. Tests that need it fail (not skip) when it
// is missing, since CI always has it.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TASKGUARD_SHARED")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "corpora")); err != nil {
		t.Fatalf("shared folder %s has no corpora (set TASKGUARD_SHARED): %v", dir, err)
	}
	return dir
}

// RequireRoot skips the test unless it runs as root, which tests of namespaces,
// ptrace and Podman need. CI runs as root, so these run there.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}
