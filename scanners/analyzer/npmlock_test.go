package analyzer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

func lockNames(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		s := p.Name + "@" + p.Version
		if p.Dev {
			s += " (dev)"
		}
		out = append(out, s)
	}
	return out
}

// TestNpmLockFromNpm has npm itself write a lock file (v3) with two
// dependencies and a dev dependency, and reads it back.
func TestNpmLockFromNpm(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		testenv.Skip(t, "npm not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"shop","version":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"install", "--package-lock-only", "--no-audit", "--no-fund", "lodash@4.17.20", "minimist@1.2.5"},
		{"install", "--package-lock-only", "--no-audit", "--no-fund", "--save-dev", "left-pad@1.3.0"},
	} {
		cmd := exec.Command("npm", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			testenv.Skip(t, "npm %v (registry unreachable?): %v\n%s", args, err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	a := npmLock{}
	if !a.Required("srv/shop/package-lock.json", nil) || a.Required("srv/shop/node_modules/x/package-lock.json", nil) {
		t.Fatal("Required is wrong")
	}
	res, err := a.Analyze(context.Background(), Input{Path: "srv/shop/package-lock.json", Content: b})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lockNames(res.Packages), []string{"left-pad@1.3.0 (dev)", "lodash@4.17.20", "minimist@1.2.5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNpmLockV1(t *testing.T) {
	const v1 = `{
  "name": "old", "version": "1.0.0", "lockfileVersion": 1, "requires": true,
  "dependencies": {
    "lodash": {"version": "4.17.15", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.15.tgz"},
    "mkdirp": {"version": "0.5.1", "requires": {"minimist": "0.0.8"},
      "dependencies": {"minimist": {"version": "0.0.8"}}},
    "minimist": {"version": "1.2.5"},
    "left-pad": {"version": "1.3.0", "dev": true},
    "local": {"version": "file:../local"}
  }
}`
	got, err := parseNpmLock([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"left-pad@1.3.0 (dev)", "lodash@4.17.15", "minimist@1.2.5", "mkdirp@0.5.1", "minimist@0.0.8"}
	if !reflect.DeepEqual(lockNames(got), want) {
		t.Errorf("got %q, want %q", lockNames(got), want)
	}
	if _, err := parseNpmLock([]byte(`{"packages": [`)); err == nil {
		t.Error("broken lock file: no error")
	}
}

func FuzzNpmLock(f *testing.F) {
	f.Add([]byte(`{"lockfileVersion":3,"packages":{"":{},"node_modules/a":{"version":"1"},"node_modules/a/node_modules/@s/b":{"version":"2","dev":true}}}`))
	f.Add([]byte(`{"dependencies":{"a":{"version":"1","dependencies":{"b":{"version":"2"}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseNpmLock(b)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}
