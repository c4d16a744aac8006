// Package testenv finds what taskguard's tests share: the repository root, the
// project's ../shared folder (corpora and seeds), and whether the test runs as
// root. It is imported only by tests.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// ptrace and Podman need. CI runs as root, so there it fails instead (Skip).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Strict reports whether a missing prerequisite must fail the test instead of
// skipping it: CI sets CI=true (and scripts/test.sh sets it, since it installs
// every prerequisite first). "false", "0" and an empty value mean not strict.
func Strict() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "", "0", "false", "no":
		return false
	}
	return true
}

// Skip skips the test with the formatted reason, or fails it when Strict: a
// test that CI cannot run is a failure there, never a silent skip. Use it for
// every "tool missing", "port taken" or "not root" case; keep t.Skip only for
// an explicit choice of the person running the tests (such as -short).
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (CI=true: a prerequisite missing here is a failure; scripts/install-deps.sh installs what the tests need)", msg)
	}
	t.Skip(msg)
}

// LookPath returns the path of the program name, or skips the test (fails it
// when Strict) naming the Debian package that provides it.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, "%s is not installed (apt-get install %s): %v", name, debianPackage, err)
	}
	return p
}

// OpenFDs counts the open file descriptors of this process (Linux), for
// tests that check nothing is left open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
