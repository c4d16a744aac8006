package waf

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// Detection by attack family and placement, CRS PL1 alone against the
// extended detection (extras.go), and the benign corpus that bounds it.
//
//	go test ./agent/waf -run 'TestDetection(Report|Benign)' -v -count=1
//	go test ./agent/waf -run TestDetectionReport -waf.detection=full -v   # every payload
//	go test ./agent/waf -run TestDetectionCandidates -waf.candidates -v   # how extendedRules was chosen
var (
	detectionMode  = flag.String("waf.detection", "sample", "detection report: sample (at most 60 payloads a family) or full (at most 600)")
	showCandidates = flag.Bool("waf.candidates", false, "run TestDetectionCandidates: every CRS rule of the attack families on the path and headers, and every rule above PL1, scored on the corpora")
)

// placement puts a payload in one part of a request.
type placement struct {
	name string
	// header is set for placements in a header value: payloads a client
	// could not send there (control characters) are left out.
	header bool
	build  func(p string) (*http.Request, []byte)
}

// newBrowserRequest is a request with a browser's headers.
func newBrowserRequest(method, target, ctype, body string) (*http.Request, []byte) {
	r, err := http.NewRequest(method, "http://shop.example.com"+target, strings.NewReader(body))
	if err != nil {
		return nil, nil
	}
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-US,en;q=0.5")
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return r, []byte(body)
}

// escapePath percent-encodes a payload for a URL path, keeping '/' as
// attackers send it.
func escapePath(p string) string {
	return strings.ReplaceAll(url.PathEscape(p), "%2F", "/")
}

var placements = []placement{
	{"query", false, func(p string) (*http.Request, []byte) {
		return newBrowserRequest("GET", "/search?q="+url.QueryEscape(p)+"&page=1", "", "")
	}},
	{"form", false, func(p string) (*http.Request, []byte) {
		return newBrowserRequest("POST", "/login", "application/x-www-form-urlencoded", "user="+url.QueryEscape(p)+"&remember=on")
	}},
	{"json", false, func(p string) (*http.Request, []byte) {
		return newBrowserRequest("POST", "/api/orders", "application/json", fmt.Sprintf(`{"note":%s,"qty":1}`, strconv.Quote(p)))
	}},
	{"cookie", true, func(p string) (*http.Request, []byte) {
		r, b := newBrowserRequest("GET", "/account", "", "")
		r.Header.Set("Cookie", "session=9f86d081884c7d65; pref="+url.PathEscape(p))
		return r, b
	}},
	{"path", false, func(p string) (*http.Request, []byte) {
		return newBrowserRequest("GET", "/files/"+escapePath(p), "", "")
	}},
	{"user-agent", true, func(p string) (*http.Request, []byte) {
		r, b := newBrowserRequest("GET", "/", "", "")
		r.Header.Set("User-Agent", p)
		return r, b
	}},
	{"x-forwarded-for", true, func(p string) (*http.Request, []byte) {
		r, b := newBrowserRequest("GET", "/", "", "")
		r.Header.Set("X-Forwarded-For", p+", 10.0.1.17")
		return r, b
	}},
	{"referer", true, func(p string) (*http.Request, []byte) {
		r, b := newBrowserRequest("GET", "/", "", "")
		r.Header.Set("Referer", p)
		return r, b
	}},
}

// headerSafe reports whether a payload can be a header value (Go's server
// refuses control characters but tab).
func headerSafe(p string) bool {
	return !strings.ContainsFunc(p, func(c rune) bool { return c < 0x20 && c != '\t' || c == 0x7f })
}

// attackFamilies are the rows of the report, in order.
var attackFamilies = []string{"sqli", "xss", "cmdi", "lfi", "php/java/generic", "ssti"}

// attackPayloads returns, per family, at most max payloads: the CRS
// regression suite's attack tests (the longest argument or cookie value of
// each, or its path when it has none), libinjection's SQLi and XSS lines,
// and testdata/attacks.
func attackPayloads(t *testing.T, max int) map[string][]string {
	t.Helper()
	all := map[string][]string{}
	seen := map[string]bool{}
	add := func(fam, p string) {
		if p == "" || len(p) > 2000 || seen[fam+"\x00"+p] {
			return
		}
		seen[fam+"\x00"+p] = true
		all[fam] = append(all[fam], p)
	}
	famOf := map[policy.Protection]string{
		policy.ProtectionSQLi: "sqli", policy.ProtectionXSS: "xss", policy.ProtectionCmdi: "cmdi",
		policy.ProtectionLFI: "lfi", policy.ProtectionCodeInjection: "php/java/generic",
	}
	for _, c := range loadFTW(t, filepath.Join(testenv.SharedDir(t), "corpora", "crs-regression")) {
		fam, ok := famOf[c.protection]
		if !ok || !c.attack {
			continue
		}
		r, body, err := parseRaw(c.raw)
		if err != nil {
			continue
		}
		best := ""
		consider := func(v string) {
			if len(v) > len(best) {
				best = v
			}
		}
		for _, vs := range r.URL.Query() {
			for _, v := range vs {
				consider(v)
			}
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			if form, err := url.ParseQuery(string(body)); err == nil {
				for _, vs := range form {
					for _, v := range vs {
						consider(v)
					}
				}
			}
		}
		for _, ck := range r.Cookies() {
			consider(ck.Value)
		}
		if best == "" && len(r.URL.Path) > 1 {
			best = strings.TrimPrefix(r.URL.Path, "/")
		}
		add(fam, best)
	}
	dir := filepath.Join(testenv.SharedDir(t), "corpora", "libinjection")
	for fam, glob := range map[string]string{"sqli": "sqli-*.txt", "xss": "xss-*.txt"} {
		files, _ := filepath.Glob(filepath.Join(dir, glob))
		if len(files) == 0 {
			t.Fatalf("no %s under %s", glob, dir)
		}
		for _, f := range files {
			for _, l := range corpusLines(t, f) {
				add(fam, l)
			}
		}
	}
	for _, l := range corpusLines(t, filepath.Join("testdata", "attacks", "ssti.txt")) {
		add("ssti", l)
	}
	for fam, ps := range all {
		if len(ps) > max {
			step := float64(len(ps)) / float64(max)
			var s []string
			for i := 0; i < max; i++ {
				s = append(s, ps[int(float64(i)*step)])
			}
			all[fam] = s
		}
	}
	return all
}

// benignLines reads a testdata/benign file.
func benignLines(t testing.TB, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "benign", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// benignRequests builds the benign corpus (testdata/benign): every value in
// a query, a form, a JSON body and a cookie; every path; the whole
// requests of requests.txt; each with a user agent, an X-Forwarded-For
// chain, a Referer, a Cookie header and an Accept-Language from the lists,
// in turn, so that every header value is sent several times.
func benignRequests(t testing.TB) []gateRequest {
	t.Helper()
	uas, xffs, refs, cookies := benignLines(t, "user-agents.txt"), benignLines(t, "forwarded-for.txt"), benignLines(t, "referers.txt"), benignLines(t, "cookies.txt")
	langs := []string{"en-US,en;q=0.9", "fr-FR,fr;q=0.9,en;q=0.8", "de-DE,de;q=0.9", "ja,en-US;q=0.7", "ar-SA,ar;q=0.9,en;q=0.5", "zh-CN,zh;q=0.9"}
	var out []gateRequest
	n := 0
	dress := func(name string, r *http.Request, body []byte) {
		if r == nil {
			t.Fatalf("benign request %s does not build", name)
		}
		r.Header.Set("User-Agent", uas[n%len(uas)])
		xff := xffs[n%len(xffs)]
		r.Header.Set("X-Forwarded-For", xff)
		client, _, _ := strings.Cut(xff, ",")
		switch n % 3 { // the other forwarding headers CDNs and proxies write
		case 0:
			r.Header.Set("X-Real-IP", client)
			r.Header.Set("X-Forwarded-Host", "shop.example.com")
		case 1:
			r.Header.Set("Forwarded", fmt.Sprintf("for=%q;proto=https;host=shop.example.com, for=10.0.1.17", client))
			r.Header.Set("True-Client-IP", client)
		case 2:
			r.Header.Set("X-Client-IP", client)
			r.Header.Set("X-Forwarded-Host", "api.shop.example.com:8443")
		}
		r.Header.Set("Referer", refs[n%len(refs)])
		r.Header.Set("Accept-Language", langs[n%len(langs)])
		r.Header.Set("Accept-Encoding", "gzip, deflate, br")
		if r.Header.Get("Cookie") == "" {
			r.Header.Set("Cookie", cookies[n%len(cookies)])
		}
		n++
		out = append(out, gateRequest{name, r, body})
	}
	for _, v := range benignLines(t, "values.txt") {
		for _, p := range placements[:4] { // query, form, json, cookie
			r, b := p.build(v)
			dress(p.name+": "+v, r, b)
		}
	}
	for _, p := range benignLines(t, "paths.txt") {
		r, b := newBrowserRequest("GET", p, "", "")
		dress("path: "+p, r, b)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "benign", "requests.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	for _, text := range strings.Split(strings.Join(lines, "\n"), "\n===\n") {
		head, body, _ := strings.Cut(strings.TrimLeft(text, "\n"), "\n\n")
		body = strings.TrimSuffix(body, "\n")
		msg := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n"
		if body != "" {
			msg += fmt.Sprintf("Content-Length: %d\r\n", len(body))
		}
		msg += "\r\n" + body
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(msg)))
		if err != nil {
			t.Fatalf("requests.txt: %v in\n%s", err, head)
		}
		r.RemoteAddr = "127.0.0.1:40000"
		r.Body = http.NoBody
		dress("request: "+strings.SplitN(head, "\n", 2)[0], r, []byte(body))
	}
	for i, l := range uas { // every header value once more, on an API call
		r, b := newBrowserRequest("GET", "/api/v1/users/4711", "", "")
		n = i
		dress("user-agent: "+l, r, b)
	}
	return out
}

// detectionEngines compiles the rule with all protections under prevent,
// with CRS PL1 alone and with the extended detection.
func detectionEngines(t testing.TB) (crs, extended *engine) {
	t.Helper()
	base := rule(8081, allProtections(policy.EffectPrevent))
	base.Detection = policy.WAFDetectionCRS
	crs, err := newEngine(base, 1, DefaultInspectionLimit)
	if err != nil {
		t.Fatal(err)
	}
	base.Detection = ""
	if extended, err = newEngine(base, 1, DefaultInspectionLimit); err != nil {
		t.Fatal(err)
	}
	return crs, extended
}

// TestDetectionBenign: the extended detection blocks nothing of the benign
// corpus, of the CRS regression suite's benign tests or of libinjection's
// false positives that CRS PL1 alone passes.
func TestDetectionBenign(t *testing.T) {
	crs, ext := detectionEngines(t)
	reqs := benignRequests(t)
	for _, l := range corpusLines(t, filepath.Join(testenv.SharedDir(t), "corpora", "libinjection", "false_positives.txt")) {
		r, b := placements[0].build(l)
		reqs = append(reqs, gateRequest{"libinjection false positive: " + l, r, b})
	}
	for _, c := range loadFTW(t, filepath.Join(testenv.SharedDir(t), "corpora", "crs-regression")) {
		if c.attack {
			continue
		}
		if r, body, err := parseRaw(c.raw); err == nil {
			reqs = append(reqs, gateRequest{"crs benign " + c.name, r, body})
		}
	}
	crsBlocks, extBlocks := 0, 0
	for i, rq := range reqs {
		if raceEnabled && i%20 != 0 {
			continue
		}
		cv, ev := crs.inspect(rq.r, rq.body, false), ext.inspect(rq.r, rq.body, false)
		if cv.effect == policy.EffectPrevent {
			crsBlocks++
			t.Logf("CRS PL1 blocks benign %s: %v", rq.name, cv.ruleIDs())
		}
		if ev.effect == policy.EffectPrevent {
			extBlocks++
		}
		if ev.effect == policy.EffectPrevent && cv.effect != policy.EffectPrevent {
			t.Errorf("extended detection blocks benign %s (CRS PL1 does not): %v", rq.name, ev.ruleIDs())
		}
		for _, m := range ev.matches {
			if m.id > extraIDBase {
				t.Errorf("extended rule %d matches benign %s: %v", m.id, rq.name, m.data)
			}
		}
	}
	t.Logf("%d benign requests: CRS PL1 blocks %d, extended %d", len(reqs), crsBlocks, extBlocks)
	if len(reqs) < 800 {
		t.Fatalf("only %d benign requests: the corpus was not read", len(reqs))
	}
}

// detectionCell counts blocks of one family in one placement.
type detectionCell struct{ n, crs, ext int }

// TestDetectionReport measures, by family and placement, how many attack
// payloads CRS PL1 alone and the extended detection block, prints the
// table (agent/waf/README.md keeps it) and requires the extended detection
// to block at least what CRS PL1 does everywhere and more in total.
func TestDetectionReport(t *testing.T) {
	if raceEnabled {
		t.Skip("a single-goroutine measurement (minutes under -race): TestDetectionBenign and TestGateSameMatches run the extended rules under the race detector")
	}
	max := 60
	if *detectionMode == "full" {
		max = 600
	}
	crs, ext := detectionEngines(t)
	payloads := attackPayloads(t, max)
	cells := map[string]map[string]*detectionCell{}
	for _, fam := range attackFamilies {
		cells[fam] = map[string]*detectionCell{}
		for _, pl := range placements {
			c := &detectionCell{}
			cells[fam][pl.name] = c
			for _, p := range payloads[fam] {
				if pl.header && !headerSafe(p) {
					continue
				}
				r, body := pl.build(p)
				if r == nil {
					continue
				}
				c.n++
				cv := crs.inspect(r, body, false)
				ev := ext.inspect(r, body, false)
				if cv.effect == policy.EffectPrevent {
					c.crs++
				}
				if ev.effect == policy.EffectPrevent {
					c.ext++
				} else if cv.effect == policy.EffectPrevent {
					t.Errorf("%s in %s: CRS PL1 blocks %q, the extended detection does not", fam, pl.name, p)
				}
			}
		}
	}
	report := &strings.Builder{}
	tw := tabwriter.NewWriter(report, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, "family (payloads)")
	for _, pl := range placements {
		fmt.Fprintf(tw, "\t%s", pl.name)
	}
	fmt.Fprintln(tw, "\t")
	var totCRS, totExt, totN int
	for _, fam := range attackFamilies {
		fmt.Fprintf(tw, "%s (%d)", fam, len(payloads[fam]))
		for _, pl := range placements {
			c := cells[fam][pl.name]
			fmt.Fprintf(tw, "\t%s → %s", pct0(c.crs, c.n), pct0(c.ext, c.n))
			totCRS, totExt, totN = totCRS+c.crs, totExt+c.ext, totN+c.n
		}
		fmt.Fprintln(tw, "\t")
	}
	_ = tw.Flush()
	fmt.Fprintf(report, "blocked, CRS PL1 → extended (%s): %d → %d of %d requests (%s → %s)\n", *detectionMode, totCRS, totExt, totN, pct0(totCRS, totN), pct0(totExt, totN))
	t.Log("\n" + report.String())
	writeReport(t, "detection", report.String())
	if totN < 1000 {
		t.Fatalf("only %d attack requests: the corpora were not read", totN)
	}
	if totExt <= totCRS {
		t.Errorf("the extended detection blocks %d, CRS PL1 %d: no gain", totExt, totCRS)
	}
}

func pct0(n, d int) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(d))
}

// candidateGroups are the target groups a PL1 rule is tried on.
var candidateGroups = []struct{ name, targets string }{
	{"path", targetPath},
	{"headers", targetHeaders},
	{"agents", targetAgents},
}

// groupOf names the candidate group of a matched variable.
func groupOf(variable, key string) string {
	switch {
	case variable == "REQUEST_FILENAME":
		return "path"
	case variable == "REQUEST_HEADERS" && (strings.EqualFold(key, "user-agent") || strings.EqualFold(key, "referer")):
		return "agents"
	case variable == "REQUEST_HEADERS":
		return "headers"
	}
	return "own"
}

// TestDetectionCandidates scores every candidate copy: each PL1 rule of
// the attack families on the path, the forwarding headers and User-Agent/
// Referer (those its own targets lack), and each PL2-PL3 rule as it is.
// A candidate "rescues" an attack CRS PL1 lets through when its score
// brings the request to the threshold; it is "noisy" when it matches any
// benign request. extendedRules holds the rescuing candidates that are not
// noisy.
func TestDetectionCandidates(t *testing.T) {
	if !*showCandidates {
		t.Skip("run with -waf.candidates")
	}
	rules, err := crsRules()
	if err != nil {
		t.Fatal(err)
	}
	var cands []extraRule
	ids := make([]int, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		p := ProtectionOf(id)
		switch p {
		case policy.ProtectionSQLi, policy.ProtectionXSS, policy.ProtectionCmdi, policy.ProtectionLFI, policy.ProtectionCodeInjection:
		default:
			continue
		}
		head := rules[id][0]
		m := plTag.FindStringSubmatch(head)
		if m == nil || strings.HasPrefix(head, "SecRule TX:") || !strings.HasPrefix(head, "SecRule ") {
			continue
		}
		own := strings.Fields(head)[1]
		switch m[1] {
		case "1":
			var targets []string
			for _, g := range candidateGroups {
				for _, tg := range strings.Split(g.targets, "|") {
					if !slices.Contains(strings.Split(own, "|"), tg) {
						targets = append(targets, tg)
					}
				}
			}
			cands = append(cands, extraRule{id, strings.Join(targets, "|")})
		case "2", "3":
			cands = append(cands, extraRule{id: id})
		}
	}
	r := rule(8081, allProtections(policy.EffectPrevent))
	e, err := compileWith(r, 1, DefaultInspectionLimit, true, cands)
	if err != nil {
		t.Fatal(err)
	}
	type score struct{ rescued, matched, benign int }
	scores := map[string]*score{}
	get := func(k string) *score {
		if scores[k] == nil {
			scores[k] = &score{}
		}
		return scores[k]
	}
	keysOf := func(v verdict) (map[string]int, int) {
		keys, base := map[string]int{}, 0
		for _, m := range v.matches {
			s := scoreOf(m)
			if m.id < extraIDBase {
				base += s
				continue
			}
			for _, d := range m.data {
				g := groupOf(d.Variable().Name(), d.Key())
				keys[fmt.Sprintf("%d %s", m.id-extraIDBase, g)] = s
			}
		}
		return keys, base
	}
	for _, rq := range benignRequests(t) {
		keys, _ := keysOf(e.inspect(rq.r, rq.body, false))
		for k := range keys {
			get(k).benign++
			t.Logf("%s matches benign %s", k, rq.name)
		}
	}
	for _, l := range corpusLines(t, filepath.Join(testenv.SharedDir(t), "corpora", "libinjection", "false_positives.txt")) {
		r, b := placements[0].build(l)
		keys, _ := keysOf(e.inspect(r, b, false))
		for k := range keys {
			get(k).benign++
		}
	}
	for _, c := range loadFTW(t, filepath.Join(testenv.SharedDir(t), "corpora", "crs-regression")) {
		if c.attack {
			continue
		}
		if r, body, err := parseRaw(c.raw); err == nil {
			keys, _ := keysOf(e.inspect(r, body, false))
			for k := range keys {
				get(k).benign++
			}
		}
	}
	max := 60
	if *detectionMode == "full" {
		max = 600
	}
	payloads := attackPayloads(t, max)
	for _, fam := range attackFamilies {
		for _, pl := range placements {
			for _, p := range payloads[fam] {
				if pl.header && !headerSafe(p) {
					continue
				}
				r, body := pl.build(p)
				if r == nil {
					continue
				}
				keys, base := keysOf(e.inspect(r, body, false))
				for k, s := range keys {
					get(k).matched++
					if base < anomalyThreshold && base+s >= anomalyThreshold {
						get(k).rescued++
					}
				}
			}
		}
	}
	var ks []string
	for k := range scores {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return scores[ks[i]].rescued > scores[ks[j]].rescued })
	var b strings.Builder
	for _, k := range ks {
		s := scores[k]
		fmt.Fprintf(&b, "%-14s rescued %4d matched %4d benign %3d\n", k, s.rescued, s.matched, s.benign)
	}
	t.Log("\n" + b.String())
}

// scoreOf is a match's anomaly score.
func scoreOf(m match) int { return score(m.id, m.severity) }

// TestExtendedDetectionThroughProxy: through the real proxy on loopback, a
// SQL injection in X-Forwarded-For and a command injection in the path are
// blocked by the extended rules (the audit names the copies' IDs), with
// detection "crs-pl1" both reach the app, and a real-looking request with
// the same headers passes either way.
func TestExtendedDetectionThroughProxy(t *testing.T) {
	for _, d := range []policy.WAFDetection{"", policy.WAFDetectionCRS} {
		t.Run("detection="+string(d), func(t *testing.T) {
			a := newApp(t)
			r := rule(a.port(t), allProtections(policy.EffectPrevent))
			r.Detection = d
			_, base, rec := startProxy(t, r)
			for _, tc := range []struct {
				name, path, xff string
				attack          bool
				copyID          int
			}{
				{"sqli in X-Forwarded-For", "/api/v1/users/4711", "1' UNION ALL SELECT password FROM users--", true, extraIDBase + 942100},
				{"cmdi in the path", "/files/;cat%20/etc/passwd", "203.0.113.195, 70.41.3.18", true, extraIDBase + 932160},
				{"benign", "/blog/2024/03/select-your-plan", "203.0.113.195, 70.41.3.18, 150.172.238.178", false, 0},
			} {
				before := len(rec.all())
				req, err := http.NewRequest(http.MethodGet, base+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1")
				req.Header.Set("Accept", "application/json")
				req.Header.Set("Accept-Language", "fr-FR,fr;q=0.9")
				req.Header.Set("X-Forwarded-For", tc.xff)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				blocked := d == "" && tc.attack
				if want := map[bool]int{true: http.StatusForbidden, false: http.StatusOK}[blocked]; resp.StatusCode != want {
					t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, want)
				}
				audits := rec.all()[before:]
				if !blocked {
					if len(audits) != 0 {
						t.Errorf("%s: %d audits, want none", tc.name, len(audits))
					}
					continue
				}
				if len(audits) != 1 || audits[0].WAF == nil || !slices.Contains(audits[0].WAF.RuleIDs, tc.copyID) {
					t.Errorf("%s: audits %+v, want one naming rule %d", tc.name, audits, tc.copyID)
				}
			}
		})
	}
}
