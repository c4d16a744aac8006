// Package docs holds taskguard's documentation pages; its test checks that
// the commands and policy examples they show are real: the README's local-run
// snippet and e2e/README's parse with the programs' own flag sets and call
// API paths that exist, and docs/policy.md's policy document parses, validates
// and shows every field of the policy model.
package docs

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/agent/command"
	"github.com/taskguard/taskguard/cli"
	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// codeBlock returns the first fenced block of lang after the heading.
func codeBlock(t *testing.T, file, heading, lang string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("%s has no %q", file, heading)
	}
	s = s[i:]
	start := strings.Index(s, "```"+lang+"\n")
	if start < 0 {
		t.Fatalf("%s: no ```%s block after %q", file, lang, heading)
	}
	s = s[start+len("```"+lang+"\n"):]
	end := strings.Index(s, "\n```")
	if end < 0 {
		t.Fatalf("%s: unterminated block after %q", file, heading)
	}
	return s[:end+1]
}

// shellWords splits a command line the way sh does for the simple quoting
// the docs use ('...', "...", $VAR and $(...) kept as words).
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	in := false
	var quote rune
	depth := 0
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '(' && strings.HasSuffix(cur.String(), "$"):
			depth++
			cur.WriteRune(r)
		case r == ')' && depth > 0:
			depth--
			cur.WriteRune(r)
		case (r == ' ' || r == '\t') && depth == 0:
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

var envAssign = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// checkSnippet: the block is valid sh; every taskguard, taskguard-console
// and taskguard-defender command parses with the program's own flags; every
// console URL names an API path that exists; every JSON body sent to a
// policy endpoint decodes strictly into that endpoint's rule type.
func checkSnippet(t *testing.T, name, block string) {
	t.Helper()
	if sh, err := exec.LookPath("sh"); err == nil {
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(block)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s is not valid sh: %v\n%s", name, err, out)
		}
	}
	paths := []string{api.PathPing, api.PathFargateJSON, api.PathFargateYAML, api.PathRuntimePolicy, api.PathWAFPolicy,
		api.PathCIPolicy, api.PathImagePolicy, api.PathRuntimeAudits, api.PathFirewallAudits}
	bodies := map[string]func() any{
		api.PathRuntimePolicy: func() any { return &policy.RuntimeRule{} },
		api.PathWAFPolicy:     func() any { return &policy.WAFRule{} },
		api.PathCIPolicy:      func() any { return &policy.CIRule{} },
		api.PathImagePolicy:   func() any { return &policy.ImageRule{} },
	}
	programs := map[string]func() *cobra.Command{
		"taskguard":          cli.NewRootCommand,
		"taskguard-console":  console.NewCommand,
		"taskguard-defender": command.New,
	}
	// Logical lines: continuations joined, and lines joined while a
	// single-quoted word (a JSON body) is open.
	var lines []string
	pending := ""
	for _, l := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		if pending == "" && strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue // a comment: its apostrophes quote nothing
		}
		pending += l
		if strings.Count(pending, "'")%2 == 1 {
			pending += " "
			continue
		}
		lines = append(lines, pending)
		pending = ""
	}
	ran := 0
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line, _, _ = strings.Cut(line, " | ")
		line, _, _ = strings.Cut(line, " > ")
		words := shellWords(strings.TrimSuffix(strings.TrimSpace(line), "&"))
		for len(words) > 0 && envAssign.MatchString(words[0]) {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		if newCmd, ok := programs[words[0]]; ok {
			ran++
			root := newCmd()
			c, args, err := root.Find(words[1:])
			if err != nil {
				t.Errorf("%s: %q: %v", name, line, err)
				continue
			}
			if err := c.ParseFlags(args); err != nil {
				t.Errorf("%s: %q: %v", name, line, err)
				continue
			}
			if c.Args != nil {
				if err := c.Args(c, c.Flags().Args()); err != nil {
					t.Errorf("%s: %q: %v", name, line, err)
				}
			}
			if c == root && len(words) > 1 && !strings.HasPrefix(words[1], "-") {
				t.Errorf("%s: %q: %s has no command %q", name, line, words[0], words[1])
			}
			continue
		}
		if words[0] != "curl" {
			continue
		}
		var url, body string
		for i, w := range words {
			if strings.HasPrefix(w, "https://") || strings.HasPrefix(w, "http://") {
				url = w
			}
			if w == "-d" && i+1 < len(words) {
				body = words[i+1]
			}
		}
		path := regexp.MustCompile(`^https?://[^/]+`).ReplaceAllString(url, "")
		path, _, _ = strings.Cut(path, "?")
		if !slices.Contains(paths, path) {
			t.Errorf("%s: %q calls %q, which is no API path", name, line, path)
			continue
		}
		ran++
		if body == "" {
			continue
		}
		mk, ok := bodies[path]
		if !ok {
			t.Errorf("%s: %q sends a body to %s", name, line, path)
			continue
		}
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(mk()); err != nil {
			t.Errorf("%s: the body sent to %s does not decode: %v\n%s", name, path, err, body)
		}
	}
	if ran == 0 {
		t.Errorf("%s: no taskguard command or console call found", name)
	}
}

func TestReadmeLocalRun(t *testing.T) {
	block := codeBlock(t, "../README.md", "## Try a protected task locally", "sh")
	checkSnippet(t, "README's local run", block)
	// What the issue asked of it: the default console (HTTPS, no
	// --insecure-http), the seeds' runtime rule, protect through the console
	// (which mints the agent token), run-local, and the audits read back.
	for _, want := range []string{"taskguard-console ", "--san 10.0.2.2", api.PathRuntimePolicy, `"denied": ["mkdir"]`,
		`"deniedDomains": ["yahoo.com"]`, api.PathFargateJSON + "?consoleaddr=", "testdata/taskdef/seeds-sample.json",
		"taskguard task run-local protected.json", api.PathRuntimeAudits} {
		if !strings.Contains(block, want) {
			t.Errorf("README's local run lacks %q", want)
		}
	}
	for _, bad := range []string{"--insecure-http", "curl -k", "curl -s -k", "TASKGUARD_AGENT_TOKEN=..."} {
		if strings.Contains(block, bad) {
			t.Errorf("README's local run holds %q", bad)
		}
	}
	if _, err := os.Stat(filepath.Join("..", "testdata", "taskdef", "seeds-sample.json")); err != nil {
		t.Error(err)
	}
}

func TestE2EReadmeRunLocal(t *testing.T) {
	block := codeBlock(t, "../e2e/README.md", "## `taskguard task run-local`", "sh")
	checkSnippet(t, "e2e/README's run-local", block)
	if strings.Contains(block, "TASKGUARD_AGENT_TOKEN=...") {
		t.Error("e2e/README still says TASKGUARD_AGENT_TOKEN=... without saying where it comes from")
	}
}

// TestPolicyDocExamples: docs/policy.md's whole document parses strictly as
// a policy, validates, and shows every field of the model.
func TestPolicyDocExamples(t *testing.T) {
	block := codeBlock(t, "policy.md", "## The whole document", "yaml")
	p, err := policy.ParsePolicy([]byte(block))
	if err != nil {
		t.Fatalf("docs/policy.md's document: %v", err)
	}
	if len(p.Runtime) == 0 || len(p.WAF) == 0 || len(p.CI) == 0 || len(p.Images) == 0 {
		t.Fatalf("the document lacks a section: %d runtime, %d waf, %d ci, %d images rules", len(p.Runtime), len(p.WAF), len(p.CI), len(p.Images))
	}
	var missing []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty.PkgPath() != reflect.TypeFor[policy.Policy]().PkgPath() {
			return
		}
		seen[ty] = true
		for f := range ty.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous || tag == "-" {
				continue
			}
			if tag != "" && tag != "revision" && !regexp.MustCompile(`(?m)(^|[\s{,])`+regexp.QuoteMeta(tag)+`:`).MatchString(block) {
				missing = append(missing, ty.Name()+"."+tag)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[policy.Policy]())
	for _, pr := range policy.Protections {
		if !bytes.Contains([]byte(block), []byte(string(pr)+":")) {
			missing = append(missing, "protection "+string(pr))
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/policy.md's document does not show %v", missing)
	}
	// The JSON bodies of the page's curl examples decode into their rule types.
	b, _ := os.ReadFile("policy.md")
	for i, part := range strings.Split(string(b), "```sh\n")[1:] {
		checkSnippet(t, "docs/policy.md example "+string(rune('1'+i)), part[:strings.Index(part, "\n```")+1])
	}
}
