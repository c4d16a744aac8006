package ruleops

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/goccy/go-yaml"

	"github.com/taskguard/taskguard/internal/testenv"
)

// The probes are test-only Coraza operators that record the value a rule
// hands them (after Coraza's transformations) and never match. tgprobe serves
// a plain rule, tgprobemm a multiMatch rule; values are kept per transaction.
var probes = struct {
	mu     sync.Mutex
	single map[string][]string
	multi  map[string][]string
}{single: map[string][]string{}, multi: map[string][]string{}}

type probe struct{ multi bool }

func (p probe) Evaluate(tx plugintypes.TransactionState, value string) bool {
	probes.mu.Lock()
	defer probes.mu.Unlock()
	if p.multi {
		probes.multi[tx.ID()] = append(probes.multi[tx.ID()], value)
	} else {
		probes.single[tx.ID()] = append(probes.single[tx.ID()], value)
	}
	return false
}

func init() {
	plugins.RegisterOperator("tgprobe", func(plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		return probe{}, nil
	})
	plugins.RegisterOperator("tgprobemm", func(plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		return probe{multi: true}, nil
	})
}

// crsDir is the CRS rules folder, the root NewOperator reads data files from.
func crsDir(t testing.TB) fs.FS {
	t.Helper()
	sub, err := fs.Sub(coreruleset.FS, "@owasp_crs")
	if err != nil {
		t.Fatalf("crs folder: %v", err)
	}
	return sub
}

// wafCache builds each Coraza WAF once per test binary.
var wafCache = struct {
	mu   sync.Mutex
	wafs map[string]wafOrErr
}{wafs: map[string]wafOrErr{}}

type wafOrErr struct {
	waf coraza.WAF
	err error
}

func cachedWAF(directives string) (coraza.WAF, error) {
	wafCache.mu.Lock()
	defer wafCache.mu.Unlock()
	if w, ok := wafCache.wafs[directives]; ok {
		return w.waf, w.err
	}
	if len(wafCache.wafs) > 2000 { // fuzzing builds WAFs for random arguments
		wafCache.wafs = map[string]wafOrErr{}
	}
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives))
	wafCache.wafs[directives] = wafOrErr{w, err}
	return w, err
}

// runArg runs phases 1 and 2 of a transaction whose ARGS:x is value and
// returns the probes' records and whether rule 1 matched.
func runArg(t testing.TB, w coraza.WAF, value string) (single, multi []string, matched bool) {
	t.Helper()
	tx := w.NewTransaction()
	defer tx.Close()
	tx.AddGetRequestArgument("x", value)
	tx.ProcessRequestHeaders()
	if _, err := tx.ProcessRequestBody(); err != nil {
		t.Fatalf("process request body: %v", err)
	}
	for _, r := range tx.MatchedRules() {
		if r.Rule().ID() == 1 {
			matched = true
		}
	}
	probes.mu.Lock()
	single, multi = probes.single[tx.ID()], probes.multi[tx.ID()]
	delete(probes.single, tx.ID())
	delete(probes.multi, tx.ID())
	probes.mu.Unlock()
	return single, multi, matched
}

// transformationWAF returns a WAF whose rule 1 applies chain (comma-separated
// names) and hands the result to tgprobe, and whose rule 2 does the same with
// multiMatch.
func transformationWAF(t testing.TB, chain string) coraza.WAF {
	t.Helper()
	ts := ""
	for _, n := range strings.Split(chain, ",") {
		ts += ",t:" + n
	}
	w, err := cachedWAF(fmt.Sprintf(`SecRuleEngine On
SecRule ARGS:x "@tgprobe" "id:1,phase:2,pass,nolog,t:none%s"
SecRule ARGS:x "@tgprobemm" "id:2,phase:2,pass,nolog,t:none%s,multiMatch"
`, ts, ts))
	if err != nil {
		t.Fatalf("waf for t:%s: %v", chain, err)
	}
	return w
}

// applyChain runs our transformations as Coraza's rule engine does. A failing
// transformation leaves the value as it was. Without multiMatch every output
// is kept; with multiMatch (Rule.executeTransformationsMultimatch) only an
// output reported as changed is kept, and each such value is evaluated too.
func applyChain(t testing.TB, chain, value string) (final string, multi []string) {
	t.Helper()
	final, mvalue := value, value
	multi = []string{value}
	for _, n := range strings.Split(chain, ",") {
		tr, err := GetTransformation(n)
		if err != nil {
			t.Fatalf("transformation %s: %v", n, err)
		}
		if out, _, err := tr(final); err == nil {
			final = out
		}
		if out, changed, err := tr(mvalue); err == nil && changed {
			multi = append(multi, out)
			mvalue = out
		}
	}
	return final, multi
}

// checkTransformation compares chain on value with Coraza.
func checkTransformation(t testing.TB, chain, value string) {
	t.Helper()
	single, multi, _ := runArg(t, transformationWAF(t, chain), value)
	wantSingle, wantMulti := applyChain(t, chain, value)
	if len(single) != 1 || single[0] != wantSingle {
		t.Errorf("t:%s(%q): coraza %q, ruleops %q", chain, value, single, wantSingle)
	}
	if !equalStrings(multi, wantMulti) {
		t.Errorf("t:%s(%q) multiMatch: coraza %q, ruleops %q", chain, value, multi, wantMulti)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// opCase is an operator with its argument as ruleops receives it; corazaArg,
// when set, is the argument written in the Coraza rule (pmFromFile names the
// file relative to Coraza's root).
type opCase struct {
	op, arg, corazaArg string
}

func (c opCase) String() string { return "@" + c.op + " " + c.arg }

// checkOperator compares NewOperator(c).Match(value) with whether Coraza's
// rule 1 matched.
func checkOperator(t testing.TB, c opCase, value string) {
	t.Helper()
	arg := c.arg
	if c.corazaArg != "" {
		arg = c.corazaArg
	}
	w, werr := cachedWAF(fmt.Sprintf("SecRuleEngine On\nSecRule ARGS:x \"@%s %s\" \"id:1,phase:2,pass,log,msg:'m'\"\n", c.op, arg))
	op, err := NewOperator(c.op, c.arg, crsDir(t))
	if (werr != nil) != (err != nil) {
		t.Fatalf("%s: coraza error %v, ruleops error %v", c, werr, err)
	}
	if err != nil {
		return
	}
	_, _, matched := runArg(t, w, value)
	if got := op.Match(value); got != matched {
		t.Errorf("%s on %q: coraza %v, ruleops %v", c, value, matched, got)
	}
}

// edgeValues are hand-picked inputs around the encodings CRS decodes.
var edgeValues = []string{
	"", " ", "a", "A", "0", "5", "-5", "+5", " 5", "5 ", "05", "4", "6", "-0", "0x10", "1e3",
	"99999999999999999999", "-99999999999999999999", "2147483648",
	"%", "%4", "%41", "%4g", "%%41", "%u0041", "%U0041", "%u004", "%uFF1C", "%u", "%c0%af", "%00", "a%00b", "%2e%2e%2f",
	"+", "a+b", "&#x3c;", "&#60;", "&#0", "&#1;", "&lt;", "&LT;", "&lt", "&#x3c", "&amp;lt;", "&nbsp;", "&quot;&apos;",
	"\\x41", "\\X41", "\\x4", "\\u0041", "\\u004", "\\uFF1C", "\\101", "\\0", "\\\\", "\\n\\r\\t", "\\a\\b\\f\\v", "\\'\\\"",
	"\\41 ", "\\000041", "\\e9", "\\\n", "\\", "\\z",
	"/* c */", "a/*c*/b", "/*", "*/", "--x", "#x", "a -- b", "<!-- x -->", "/*!50000select*/",
	"\x00", "a\x00b\x00", "\x00\x00",
	"\xff", "\xc3\x28", "\xe2\x82", "é", "日本", "\xf0\x9f\x98\x80", "\u00ff", "\uff1c",
	"  a  b  ", "\t\n\v\f\r ", "a\u00a0b", "a\u3000b",
	"/a/b/../c/./d//e/", "..\\..\\windows\\win.ini", "C:\\boot.ini", "file.txt::$DATA", "file.txt. . ", "/etc/passwd", "./", "../", "/", "//",
	"c^a\"t' /e,t;c", "C:\\WINDOWS\\system32 (x)", "  trailing  ",
	"YWJj", "YWJjZA", "YWJjZA==", "YW=Jj", "Y", "====", "!!!", "YW Jj", "-_", "414243", "41424", "zz", "4G",
	"SELECT * FROM users WHERE id=1 OR 1=1", "1' or '1'='1", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
	"javascript:alert(1)", "; cat /etc/passwd", "$(id)", "union select", "UNION SELECT", "document.cookie",
	"127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "::ffff:10.0.0.1", "2001:db8::1", "256.1.1.1",
	"GET", "POST", "get", "admin", "/admin/x", "x.php", ".php", "wget http://x",
	strings.Repeat("a", 5000), strings.Repeat("%41", 2000), strings.Repeat("&#x41;", 1000), strings.Repeat("/*", 1000),
}

// corpusValues samples request material from the shared corpora: lines of
// libinjection's attack and benign strings, and the URIs, bodies and header
// values of the CRS regression tests (also URL-decoded).
func corpusValues(t testing.TB, perSource int) []string {
	t.Helper()
	dir := filepath.Join(testenv.SharedDir(t), "corpora")
	var out []string
	for _, f := range []string{"libinjection/sqli-@ru_raz0-20160705.txt", "libinjection/false_positives.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("corpus: %v", err)
		}
		out = append(out, sample(strings.Split(string(b), "\n"), perSource)...)
	}
	files, err := filepath.Glob(filepath.Join(dir, "crs-regression", "REQUEST-*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("crs-regression corpus: %d files, %v", len(files), err)
	}
	var crs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("corpus: %v", err)
		}
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			continue // a few regression files use YAML the parser rejects; the rest suffice
		}
		collectInputs(doc, "", &crs)
	}
	sort.Strings(crs)
	crs = dedup(crs)
	return append(out, sample(crs, perSource)...)
}

func collectInputs(v any, key string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			collectInputs(x, k, out)
		}
	case []any:
		for _, x := range v {
			collectInputs(x, key, out)
		}
	case string:
		switch key {
		case "uri", "data", "User-Agent", "Referer", "Cookie", "Content-Type":
			*out = append(*out, v)
			for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '&' || r == '?' }) {
				_, val, ok := strings.Cut(part, "=")
				if !ok {
					continue
				}
				if dec, err := url.QueryUnescape(val); err == nil {
					*out = append(*out, dec)
				}
			}
		}
	}
}

// sample returns at most n elements spread evenly over s.
func sample(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, s[i*len(s)/n])
	}
	return out
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
