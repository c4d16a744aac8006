package waf

import (
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/taskguard/taskguard/agent/waf/internal/gate"
	"github.com/taskguard/taskguard/internal/testenv"
)

// captureState is the part of a transaction an operator touches.
type captureState struct {
	plugintypes.TransactionState // nil: any other method would panic
	capturing                    bool
	fields                       map[int]string
}

func (s *captureState) Capturing() bool { return s.capturing }
func (s *captureState) CaptureField(i int, v string) {
	s.fields[i] = v
}

// crsPatterns returns every @rx argument of the embedded rule set.
func crsPatterns(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(crsFS, "@owasp_crs/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	var out []string
	for _, f := range files {
		b, err := fs.ReadFile(crsFS, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range logicalLines(string(b)) {
			i := strings.Index(line, `"@`+rxOperator+` `)
			if i < 0 {
				i = strings.Index(line, `"!@`+rxOperator+` `)
				if i < 0 {
					continue
				}
				i++
			}
			rest := line[i+len(rxOperator)+3:]
			end := 0
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			out = append(out, rest[:end])
		}
	}
	return out
}

// TestRxMatchesGoRegexp checks the proxy's @rx against Coraza's reference
// semantics (Go's regexp with (?sm)) for every CRS pattern on attack strings,
// benign strings, invalid UTF-8 and multi-line input, capturing and not, on
// first evaluation and on memoized repeats.
func TestRxMatchesGoRegexp(t *testing.T) {
	inputs := []string{
		"", "a", "ab", "abc", "abcd", "2", "dark", "blue running shoes 42",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"1' UNION SELECT username, password FROM users--", "<script>alert(1)</script>",
		"../../../../etc/passwd", ";cat /etc/passwd", "() { :; }; /bin/bash -c id",
		"<?php system($_GET['c']); ?>", "${jndi:ldap://x/a}", "java.lang.Runtime",
		"line one\nSELECT * FROM t\nline three", "\xc0\xaf../\xff\xfe", "caf\xe9 ' or 1=1 --",
		strings.Repeat("a", 300) + " union select 1", strings.Repeat("x", 300),
	}
	dir := filepath.Join(testenv.SharedDir(t), "corpora", "libinjection")
	for _, name := range []string{"sqli-misc.txt", "xss-smoke-test.txt", "false_positives.txt"} {
		lines := corpusLines(t, filepath.Join(dir, name))
		for i := 0; i < len(lines); i += max(1, len(lines)/40) {
			inputs = append(inputs, lines[i])
		}
	}
	patterns := crsPatterns(t)
	if len(patterns) < 100 {
		t.Fatalf("only %d @rx patterns found in the rule set", len(patterns))
	}
	checked := 0
	for _, p := range patterns {
		ref, err := regexp.Compile("(?sm)" + p)
		if err != nil || gate.MatchesBytes("(?sm)"+p) {
			continue // Coraza itself runs these on binaryregexp, as the proxy does
		}
		op, err := compileRx(p)
		if err != nil {
			t.Fatalf("compileRx(%q): %v", p, err)
		}
		for _, in := range inputs {
			want := ref.FindStringSubmatch(in)
			for round := 0; round < 2; round++ { // the second round hits the memo
				for _, capturing := range []bool{false, true} {
					st := &captureState{capturing: capturing, fields: map[int]string{}}
					got := op.Evaluate(st, in)
					if got != (want != nil) {
						t.Fatalf("pattern %q on %q (capturing %v, round %d): got %v, Go regexp %v", p, in, capturing, round, got, want != nil)
					}
					if capturing && got {
						for i := 0; i < min(len(want), 9); i++ {
							if st.fields[i] != want[i] {
								t.Fatalf("pattern %q on %q: capture %d = %q, Go regexp %q", p, in, i, st.fields[i], want[i])
							}
						}
					}
				}
			}
			checked++
		}
	}
	t.Logf("%d patterns x inputs compared", checked)
	if !slices.ContainsFunc(patterns, func(p string) bool { return strings.Contains(p, "union") }) {
		t.Error("pattern extraction missed the SQLi patterns")
	}
}
