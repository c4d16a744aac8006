package jenkins_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	"src/io/taskguard/jenkins/StepOptions.groovy",
	"examples/Jenkinsfile",
	"examples/Jenkinsfile.scripted",
	"examples/Jenkinsfile.parallel",
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
		testenv.Skip(t, "npm-groovy-lint not installed (%v): run scripts/install-deps.sh", err)
	}
	return lint
}

// TestGroovyLint lints every Groovy file, plus a canary with a known
// violation that proves the linter really ran with our rules.
func TestGroovyLint(t *testing.T) {
	readSources(t)
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
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
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

// readSources reads the library's Groovy sources and help files. The test
// cache only notices files the test process itself opens, and groovy reads
// them in a child process: reading them here makes an edit rerun the tests.
func readSources(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "jenkins")
	files := append([]string{}, groovyFiles...)
	files = append(files, ".groovylintrc.json", "test/testdata/canary.groovy")
	for _, f := range groovyFiles {
		if strings.HasPrefix(f, "vars/") {
			files = append(files, strings.TrimSuffix(f, ".groovy")+".txt")
		}
	}
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(data)
	}
	return out
}

var (
	parameterList = regexp.MustCompile(`(?s)@Field static final List<String> [A-Z]+_PARAMETERS = \[(.*?)\]`)
	quoted        = regexp.MustCompile(`'([A-Za-z]+)'`)
)

// TestHelpFiles checks that every step has its .txt help and that the help
// documents every parameter the step accepts.
func TestHelpFiles(t *testing.T) {
	src := readSources(t)
	for _, f := range groovyFiles {
		if !strings.HasPrefix(f, "vars/") {
			continue
		}
		t.Run(f, func(t *testing.T) {
			m := parameterList.FindStringSubmatch(src[f])
			if m == nil {
				t.Fatalf("%s declares no _PARAMETERS list", f)
			}
			params := quoted.FindAllStringSubmatch(m[1], -1)
			if len(params) < 5 {
				t.Fatalf("%s: only %d parameters found", f, len(params))
			}
			help := src[strings.TrimSuffix(f, ".groovy")+".txt"]
			for _, p := range params {
				if !strings.Contains(help, "<code>"+p[1]+"</code>") {
					t.Errorf("%s.txt does not document parameter %s", strings.TrimSuffix(filepath.Base(f), ".groovy"), p[1])
				}
			}
		})
	}
}
