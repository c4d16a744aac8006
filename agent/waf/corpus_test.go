package waf

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/libinjection-go"
	"github.com/goccy/go-yaml"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// The corpus measurement replays every go-ftw test of the CRS regression suite
// and every libinjection corpus line through two engines in the same run:
// taskguard's engine (all protections on, prevent, PL1) and plain Coraza with
// the whole CRS at PL1 (SecRuleEngine On, as Coraza's own http middleware runs
// it). Requests go through the Coraza transaction directly, not over loopback:
// each request is first parsed by net/http's own request reader from the raw
// bytes go-ftw would send (so what Go's server rejects is rejected here too),
// and then given to engine.inspect, the function ServeHTTP calls. The proxy
// path itself (listener, body streaming, block page) is covered by
// proxy_test.go; leaving it out makes the full corpus run in a minute.
//
// Default: a deterministic sample (every 7th CRS test, every 40th corpus line).
// Full run and report: go test ./agent/waf -run TestCorpus -waf.corpus=full -v
// (bench/waf/corpus.sh does that and keeps the report).
var (
	corpusMode = flag.String("waf.corpus", "sample", "corpus measurement: sample or full")
	corpusPL   = flag.Int("waf.pl", 1, "paranoia level of both engines in the corpus measurement")
)

var (
	enginesOnce sync.Once
	oursEngine  *engine
	plainWAF    coraza.WAF
	enginesErr  error
)

func corpusEngines(t testing.TB) (*engine, coraza.WAF) {
	t.Helper()
	enginesOnce.Do(func() {
		oursEngine, enginesErr = newEngine(rule(8081, allProtections(policy.EffectPrevent)), *corpusPL, DefaultInspectionLimit)
		if enginesErr != nil {
			return
		}
		plainWAF, enginesErr = newPlainCRS(*corpusPL)
	})
	if enginesErr != nil {
		t.Fatal(enginesErr)
	}
	return oursEngine, plainWAF
}

// newPlainCRS is Coraza with the recommended configuration and every CRS
// rule file at paranoia level pl (the default is 1), blocking.
func newPlainCRS(pl int) (coraza.WAF, error) {
	return coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(fmt.Sprintf(`
Include @coraza.conf-recommended
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
Include @owasp_crs/*.conf
SecRuleEngine On
`, pl)))
}

// plainBlocks reports whether plain Coraza+CRS interrupts the request.
func plainBlocks(w coraza.WAF, r *http.Request, body []byte) bool {
	blocked, _ := plainInspect(w, r, body)
	return blocked
}

// plainInspect runs plain Coraza+CRS on the request and returns whether it
// interrupts it and which rules logged a match.
func plainInspect(w coraza.WAF, r *http.Request, body []byte) (bool, map[int]bool) {
	tx := w.NewTransaction()
	defer tx.Close()
	fillRequest(tx, r)
	it := tx.ProcessRequestHeaders()
	if it == nil && len(body) > 0 && tx.IsRequestBodyAccessible() {
		it, _, _ = tx.WriteRequestBody(body)
	}
	if it == nil {
		it, _ = tx.ProcessRequestBody()
	}
	ids := map[int]bool{}
	for _, mr := range tx.MatchedRules() {
		if mr.Message() != "" {
			ids[mr.Rule().ID()] = true
		}
	}
	return it != nil, ids
}

// ftwPasses is go-ftw's own verdict: every expected rule logged, no
// unexpected one.
func ftwPasses(c ftwCase, ids map[int]bool) bool {
	for _, id := range c.expect {
		if !ids[id] {
			return false
		}
	}
	for _, id := range c.noExpect {
		if ids[id] {
			return false
		}
	}
	return true
}

// ftwFile is the part of the go-ftw YAML format the replay needs.
type ftwFile struct {
	RuleID int `yaml:"rule_id"`
	Tests  []struct {
		TestID int `yaml:"test_id"`
		Stages []struct {
			Input  ftwInput `yaml:"input"`
			Output struct {
				Log struct {
					ExpectIDs   []int `yaml:"expect_ids"`
					NoExpectIDs []int `yaml:"no_expect_ids"`
				} `yaml:"log"`
			} `yaml:"output"`
		} `yaml:"stages"`
	} `yaml:"tests"`
}

// ftwCase is one replayable stage: the raw request and the expected verdict.
type ftwCase struct {
	name       string
	protection policy.Protection
	attack     bool
	raw        []byte
	expect     []int
	noExpect   []int
}

// rawRequest renders a go-ftw input as the bytes go-ftw sends.
func rawRequest(in ftwInput) ([]byte, error) {
	if in.EncodedRequest != "" {
		return base64.StdEncoding.DecodeString(strings.ReplaceAll(in.EncodedRequest, "\n", ""))
	}
	method, uri, version := in.Method, in.URI, in.Version
	if method == "" {
		method = "GET"
	}
	if uri == "" {
		uri = "/"
	}
	if version == "" {
		version = "HTTP/1.1"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", method, uri, version)
	names := make([]string, 0, len(in.Headers))
	for k := range in.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	hasLen := false
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %v\r\n", k, in.Headers[k])
		hasLen = hasLen || strings.EqualFold(k, "Content-Length")
	}
	if in.AutocompleteHeaders == nil || *in.AutocompleteHeaders {
		if in.Data != "" && !hasLen {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(in.Data))
		}
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(in.Data)
	return b.Bytes(), nil
}

type ftwInput struct {
	Method              string         `yaml:"method"`
	URI                 string         `yaml:"uri"`
	Version             string         `yaml:"version"`
	Headers             map[string]any `yaml:"headers"`
	Data                string         `yaml:"data"`
	EncodedRequest      string         `yaml:"encoded_request"`
	AutocompleteHeaders *bool          `yaml:"autocomplete_headers"`
}

// loadFTW reads the regression suite's request-side families.
func loadFTW(t *testing.T, dir string) []ftwCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "REQUEST-9*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no go-ftw tests under %s (err %v)", dir, err)
	}
	var cases []ftwCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ff ftwFile
		if err := yaml.Unmarshal(b, &ff); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		prot := ProtectionOf(ff.RuleID)
		if prot == "" {
			continue // 943 session fixation, 949 scoring: no protection maps to them
		}
		for _, tc := range ff.Tests {
			for si, st := range tc.Stages {
				exp, noexp := st.Output.Log.ExpectIDs, st.Output.Log.NoExpectIDs
				if len(exp) == 0 && len(noexp) == 0 {
					continue
				}
				raw, err := rawRequest(st.Input)
				if err != nil {
					t.Fatalf("%s test %d: %v", f, tc.TestID, err)
				}
				cases = append(cases, ftwCase{
					name:       fmt.Sprintf("%d-%d/%d", ff.RuleID, tc.TestID, si),
					protection: prot,
					attack:     len(exp) > 0,
					raw:        raw,
					expect:     exp,
					noExpect:   noexp,
				})
			}
		}
	}
	return cases
}

// tally counts verdicts of one protection for both engines.
type tally struct {
	attacks, oursHit, plainHit  int
	benign, oursPass, plainPass int
	unparsed                    int
	cases, oursFTW, plainFTW    int
	oursMiss, plainOnly         []string
	oursFP, oursOnlyFP          []string
}

func pct(n, d int) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
}

// parseRaw parses raw request bytes the way the proxy's server would.
func parseRaw(raw []byte) (*http.Request, []byte, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, nil, err
	}
	r.RemoteAddr = "127.0.0.1:40000"
	body, err := io.ReadAll(io.LimitReader(r.Body, DefaultInspectionLimit))
	if err != nil {
		return nil, nil, err
	}
	return r, body, nil
}

func TestCorpusCRSRegression(t *testing.T) {
	ours, plain := corpusEngines(t)
	cases := loadFTW(t, filepath.Join(testenv.SharedDir(t), "corpora", "crs-regression"))
	step := 7
	switch {
	case *corpusMode == "full":
		step = 1
	case raceEnabled:
		step = 35
	}
	per := map[policy.Protection]*tally{}
	for i, c := range cases {
		if i%step != 0 {
			continue
		}
		tl := per[c.protection]
		if tl == nil {
			tl = &tally{}
			per[c.protection] = tl
		}
		r, body, err := parseRaw(c.raw)
		if err != nil {
			tl.unparsed++ // Go's server answers 400 before any handler runs
			continue
		}
		v := ours.inspect(r, body, false)
		oursBlocks := v.effect == policy.EffectPrevent
		plainBlock, plainIDs := plainInspect(plain, r, body)
		oursIDs := map[int]bool{}
		for _, id := range v.ruleIDs() {
			oursIDs[id] = true
		}
		tl.cases++
		if ftwPasses(c, oursIDs) {
			tl.oursFTW++
		}
		if ftwPasses(c, plainIDs) {
			tl.plainFTW++
		}
		if c.attack {
			tl.attacks++
			if oursBlocks {
				tl.oursHit++
			} else {
				tl.oursMiss = append(tl.oursMiss, c.name)
			}
			if plainBlock {
				tl.plainHit++
				if !oursBlocks {
					tl.plainOnly = append(tl.plainOnly, c.name)
				}
			}
		} else {
			tl.benign++
			if !oursBlocks {
				tl.oursPass++
			} else {
				tl.oursFP = append(tl.oursFP, c.name)
			}
			if !plainBlock {
				tl.plainPass++
				if oursBlocks {
					tl.oursOnlyFP = append(tl.oursOnlyFP, c.name)
				}
			}
		}
	}
	report := &strings.Builder{}
	tw := tabwriter.NewWriter(report, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "CRS regression (%s, step %d, PL%d)\tattacks\ttaskguard blocks\tplain CRS blocks\tbenign\ttaskguard passes\tplain passes\tgo-ftw rule-level: taskguard\tplain\tunparsed\n", *corpusMode, step, *corpusPL)
	var tot tally
	for _, p := range policy.Protections {
		tl := per[p]
		if tl == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", p, tl.attacks, pct(tl.oursHit, tl.attacks), pct(tl.plainHit, tl.attacks), tl.benign, pct(tl.oursPass, tl.benign), pct(tl.plainPass, tl.benign), pct(tl.oursFTW, tl.cases), pct(tl.plainFTW, tl.cases), tl.unparsed)
		tot.cases += tl.cases
		tot.oursFTW += tl.oursFTW
		tot.plainFTW += tl.plainFTW
		tot.attacks += tl.attacks
		tot.oursHit += tl.oursHit
		tot.plainHit += tl.plainHit
		tot.benign += tl.benign
		tot.oursPass += tl.oursPass
		tot.plainPass += tl.plainPass
		tot.unparsed += tl.unparsed
	}
	fmt.Fprintf(tw, "total\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", tot.attacks, pct(tot.oursHit, tot.attacks), pct(tot.plainHit, tot.attacks), tot.benign, pct(tot.oursPass, tot.benign), pct(tot.plainPass, tot.benign), pct(tot.oursFTW, tot.cases), pct(tot.plainFTW, tot.cases), tot.unparsed)
	_ = tw.Flush()
	for _, p := range policy.Protections {
		if tl := per[p]; tl != nil && len(tl.oursMiss) > 0 {
			fmt.Fprintf(report, "misses %s (%d): %s\n", p, len(tl.oursMiss), strings.Join(tl.oursMiss, " "))
		}
		if tl := per[p]; tl != nil && len(tl.oursFP) > 0 {
			fmt.Fprintf(report, "blocked benign %s (%d): %s\n", p, len(tl.oursFP), strings.Join(tl.oursFP, " "))
		}
		if tl := per[p]; tl != nil && len(tl.oursOnlyFP) > 0 {
			fmt.Fprintf(report, "blocked benign %s by taskguard only (%d): %s\n", p, len(tl.oursOnlyFP), strings.Join(tl.oursOnlyFP, " "))
		}
	}
	t.Log("\n" + report.String())
	writeReport(t, "crs-regression", report.String())

	if tot.attacks < 50 {
		t.Fatalf("only %d attack tests replayed: the corpus was not read", tot.attacks)
	}
	for _, p := range policy.Protections {
		if tl := per[p]; tl != nil && len(tl.plainOnly) > 0 {
			t.Errorf("%s: plain Coraza+CRS blocks attacks taskguard lets through: %s", p, strings.Join(tl.plainOnly, " "))
		}
	}
	if tot.oursPass < tot.plainPass {
		t.Errorf("taskguard passes %d benign tests, plain CRS %d: more false positives", tot.oursPass, tot.plainPass)
	}
}

// corpusLines reads a libinjection data file: one input per line, '#' comments.
func corpusLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

func TestCorpusLibinjection(t *testing.T) {
	ours, plain := corpusEngines(t)
	dir := filepath.Join(testenv.SharedDir(t), "corpora", "libinjection")
	step := 40
	switch {
	case *corpusMode == "full":
		step = 1
	case raceEnabled:
		step = 200
	}
	type row struct {
		name                           string
		attack                         bool
		n, ours, attributed, plain, li int
		miss                           []string
	}
	groups := []struct {
		name    string
		glob    string
		attack  bool
		protect policy.Protection
	}{
		{"sqli", "sqli-*.txt", true, policy.ProtectionSQLi},
		{"xss", "xss-*.txt", true, policy.ProtectionXSS},
		{"false positives", "false_positives.txt", false, ""},
	}
	var rows []row
	for _, g := range groups {
		files, _ := filepath.Glob(filepath.Join(dir, g.glob))
		if len(files) == 0 {
			t.Fatalf("no %s under %s", g.glob, dir)
		}
		rw := row{name: g.name, attack: g.attack}
		i := 0
		for _, f := range files {
			for _, line := range corpusLines(t, f) {
				i++
				if i%step != 0 {
					continue
				}
				rw.n++
				r, _ := http.NewRequest(http.MethodGet, "/search?q="+url.QueryEscape(line), nil)
				r.Host = "shop.example.com"
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("User-Agent", "Mozilla/5.0")
				r.Header.Set("Accept", "*/*")
				v := ours.inspect(r, nil, false)
				if v.effect == policy.EffectPrevent {
					rw.ours++
				} else if g.attack {
					rw.miss = append(rw.miss, line)
				}
				if g.protect != "" && containsString(v.protections, string(g.protect)) {
					rw.attributed++
				}
				if plainBlocks(plain, r, nil) {
					rw.plain++
				}
				if sqli, _ := libinjection.IsSQLi(line); sqli || libinjection.IsXSS(line) {
					rw.li++
				}
				if !g.attack && v.effect == policy.EffectPrevent {
					rw.miss = append(rw.miss, line)
				}
			}
		}
		rows = append(rows, rw)
	}
	report := &strings.Builder{}
	tw := tabwriter.NewWriter(report, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "libinjection (%s, step %d, PL%d), GET ?q=<line>\tlines\ttaskguard blocks\tby own family\tplain CRS blocks\tlibinjection-go alone\n", *corpusMode, step, *corpusPL)
	for _, rw := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", rw.name, rw.n, pct(rw.ours, rw.n), pct(rw.attributed, rw.n), pct(rw.plain, rw.n), pct(rw.li, rw.n))
	}
	_ = tw.Flush()
	for _, rw := range rows {
		label := "misses"
		if !rw.attack {
			label = "blocked benign"
		}
		fmt.Fprintf(report, "%s %s (%d): %q\n", label, rw.name, len(rw.miss), rw.miss)
	}
	t.Log("\n" + report.String())
	writeReport(t, "libinjection", report.String())

	for _, rw := range rows {
		if rw.n == 0 {
			t.Fatalf("%s: no lines replayed", rw.name)
		}
		if rw.attack && rw.ours < rw.plain {
			t.Errorf("%s: taskguard blocks %d of %d, plain CRS %d", rw.name, rw.ours, rw.n, rw.plain)
		}
		if !rw.attack && rw.ours > rw.plain {
			t.Errorf("%s: taskguard blocks %d benign lines, plain CRS %d", rw.name, rw.ours, rw.plain)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeReport keeps the full run's report where bench/waf/corpus.sh asks for it.
func writeReport(t *testing.T, name, text string) {
	t.Helper()
	dir := os.Getenv("WAF_CORPUS_REPORT_DIR")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(text), 0o644); err != nil {
		t.Errorf("write report: %v", err)
	}
}
