package jenkins_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/internal/testenv"
)

// groovyFiles are the library's Groovy sources, linted with the rules of
// .groovylintrc.json.
var groovyFiles = []string{
	"vars/taskguardScan.groovy",
	"vars/taskguardProtectTask.groovy",
	"vars/taskguardPublish.groovy",
	"examples/Jenkinsfile",
	"examples/Jenkinsfile.scripted",
	"test/harness.groovy",
}

// groovyLint finds npm-groovy-lint where scripts/install-deps.sh puts it.
func groovyLint(t *testing.T) string {
	t.Helper()
	tools := os.Getenv("TASKGUARD_TOOLS")
	if tools == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			cache = filepath.Join(home, ".cache")
		}
		tools = filepath.Join(cache, "taskguard", "tools")
	}
	lint := filepath.Join(tools, "groovylint", "node_modules", ".bin", "npm-groovy-lint")
	if _, err := os.Stat(lint); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("npm-groovy-lint not installed (%v); CI runs scripts/install-deps.sh", err)
		}
		t.Skipf("npm-groovy-lint not installed (%v): run scripts/install-deps.sh", err)
	}
	return lint
}

// TestGroovyLint lints every Groovy file, plus a canary with a known
// violation that proves the linter really ran with our rules.
func TestGroovyLint(t *testing.T) {
	lint := groovyLint(t)
	requireTool(t, "java", "apt-get install default-jre-headless")
	dir := filepath.Join(testenv.RepoRoot(t), "jenkins")
	// The canary lives beside the sources: CodeNarc scans from the files'
	// common directory, so a file elsewhere would widen that to the root.
	canary := filepath.Join(dir, "test", "testdata", "canary.groovy")
	args := []string{"--noserver", "--no-parse", "--failon", "none", "-o", "json", "-c", dir, "-j", filepath.Join(javaHome, "bin", "java")}
	for _, f := range groovyFiles {
		args = append(args, filepath.Join(dir, f))
	}
	args = append(args, canary)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := killGroup(exec.CommandContext(ctx, lint, args...))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "JAVA_HOME="+javaHome)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("npm-groovy-lint: %v\n%s", err, out)
	}
	var res struct {
		Files map[string]struct {
			Errors []struct {
				Line     int    `json:"line"`
				Rule     string `json:"rule"`
				Severity string `json:"severity"`
				Msg      string `json:"msg"`
			} `json:"errors"`
		} `json:"files"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("npm-groovy-lint output: %v\n%s", err, out)
	}
	for _, f := range append(groovyFiles, canary) {
		path := f
		if !filepath.IsAbs(f) {
			path = filepath.Join(dir, f)
		}
		file, ok := res.Files[path]
		if !ok {
			t.Errorf("%s was not linted", f)
			continue
		}
		var bad []string
		for _, e := range file.Errors {
			if e.Severity == "error" || e.Severity == "warning" {
				bad = append(bad, e.Rule)
				if path != canary {
					t.Errorf("%s:%d: %s %s: %s", f, e.Line, e.Severity, e.Rule, e.Msg)
				}
			}
		}
		if path == canary && strings.Join(bad, ",") != "LineLength" {
			t.Errorf("canary: violations %v, want [LineLength]: the linter did not apply the rules", bad)
		}
	}
}
