package waf

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/taskguard/taskguard/console/policy"
)

// directCompared are the variables TestDirectSameCollections compares.
var directCompared = append(append([]variables.RuleVariable{
	variables.RequestHeaders, variables.RequestHeadersNames, variables.RequestCookies,
	variables.RequestCookiesNames, variables.ArgsGet, variables.ArgsGetNames, variables.ArgsPost,
	variables.ArgsPostNames, variables.Args, variables.ArgsNames, variables.ArgsCombinedSize,
}, dirSingles...), dirEmpty[:]...)

// dumpCollection renders what the gate can read of a collection: every
// value, and for keyed ones each key's selection (as given, lower case,
// upper case), Get, and a regular expression's selection; sorted, since
// Coraza's maps have no order.
func dumpCollection(col collection.Collection, keys []string) string {
	if col == nil {
		return "<nil>"
	}
	var lines []string
	add := func(what string, ms []types.MatchData) {
		for _, m := range ms {
			lines = append(lines, fmt.Sprintf("%s %s|%q|%q", what, m.Variable().Name(), m.Key(), m.Value()))
		}
	}
	lines = append(lines, "name "+col.Name())
	add("all", (col.FindAll()))
	if k, ok := col.(collection.Keyed); ok {
		rx := regexp.MustCompile(`^(?:se|c|x-|q|user|json)`)
		add("rx", (k.FindRegex(rx)))
		for _, key := range keys {
			for _, kk := range []string{key, strings.ToLower(key), strings.ToUpper(key)} {
				add("key "+kk, (k.FindString(kk)))
				// Sorted: Coraza adds the values of names that differ
				// only in case in its cookie parser's map order.
				got := k.Get(kk)
				slices.Sort(got)
				lines = append(lines, fmt.Sprintf("get %s %q", kk, got))
			}
		}
	}
	if s, ok := col.(collection.Single); ok {
		lines = append(lines, fmt.Sprintf("single %q", s.Get()))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestDirectSameCollections builds the direct view of every replayed request
// (the CRS regression corpus, libinjection in six placements, the benign
// and wrk mixes) and, where the direct path takes the request, requires the
// same values in every variable the gate may read as a Coraza transaction
// after its request phases; TX too when Coraza's gate skipped both phases
// (otherwise the rules' own writes are in it).
func TestDirectSameCollections(t *testing.T) {
	step := 6
	if testing.Short() || raceEnabled {
		step = 30
	}
	reqs := gateRequests(t, step)
	mix := &wrkMix{rng: rand.New(rand.NewPCG(3, 4))}
	for range 60 {
		r, body := mix.next()
		reqs = append(reqs, gateRequest{"mix " + r.URL.Path, r, body})
	}
	e, err := compileEngine(mixRule(t), 1, DefaultInspectionLimit, true)
	if err != nil {
		t.Fatal(err)
	}
	taken, txCompared := 0, 0
	for _, rq := range reqs {
		ok, txc := compareDirect(t, e, rq.name, rq.r, rq.body)
		if !ok {
			if strings.HasPrefix(rq.name, "mix ") || strings.HasPrefix(rq.name, "bench ") {
				t.Errorf("%s: the direct path does not take a request of the benign mix", rq.name)
			}
			continue
		}
		taken++
		if txc {
			txCompared++
		}
	}
	t.Logf("%d requests, the direct view built for %d, TX compared on %d", len(reqs), taken, txCompared)
	if taken < len(reqs)/2 || txCompared == 0 {
		t.Errorf("the direct view was built for %d of %d requests, TX compared on %d", taken, len(reqs), txCompared)
	}
}

// compareDirect builds the direct view of a request and, when the direct
// path takes it, compares it with a Coraza transaction's collections after
// the request phases (TX too when Coraza's gate skipped both phases). It
// reports whether the direct path took the request and whether TX was
// compared.
func compareDirect(t testing.TB, e *engine, name string, r *http.Request, body []byte) (taken, txCompared bool) {
	t.Helper()
	rt := directPool.New().(*directTx)
	rt.reset(e.txBase)
	ok := func() (ok bool) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s: building the direct view panicked: %v", name, p)
			}
		}()
		return buildDirect(rt, r) && e.directBody(rt, body)
	}()
	if !ok {
		return false, false
	}
	tx := e.waf.NewTransaction()
	defer tx.Close()
	closeGate := e.openGate(tx)
	defer closeGate()
	fillRequest(tx, r)
	tx.ProcessRequestHeaders()
	if len(body) > 0 {
		_, _, _ = tx.WriteRequestBody(body)
	}
	_, _ = tx.ProcessRequestBody()
	ts := tx.(plugintypes.TransactionState)
	var keys []string
	for _, m := range append(append(rt.headers.kv, rt.cookies.kv...), append(rt.argsGet.kv, rt.argsPost.kv...)...) {
		keys = append(keys, m.key)
	}
	keys = append(keys, "content-type", "missing", "")
	for _, v := range directCompared {
		if got, want := dumpCollection(rt.Collection(v), keys), dumpCollection(ts.Collection(v), keys); got != want {
			t.Errorf("%s: %s differs\ndirect:\n%s\ncoraza:\n%s", name, v.Name(), got, want)
		}
	}
	gates := 0
	for _, mr := range tx.MatchedRules() {
		if id := mr.Rule().ID(); id == gateIDs[0] || id == gateIDs[1] {
			gates++
		}
	}
	if gates != 2 {
		return true, false
	}
	txKeys := []string{"json_request_body", "blocking_paranoia_level", "0", "10", "crs_setup_version", "BLOCKING_PARANOIA_LEVEL"}
	if got, want := dumpCollection(rt.Collection(variables.TX), txKeys), dumpCollection(ts.Collection(variables.TX), txKeys); got != want {
		t.Errorf("%s: TX differs\ndirect:\n%s\ncoraza:\n%s", name, got, want)
	}
	return true, true
}

// FuzzDirect compares the direct view of arbitrary requests with Coraza's
// collections (compareDirect).
func FuzzDirect(f *testing.F) {
	for _, s := range gateFuzzSeeds {
		f.Add([]byte(s))
	}
	e, _ := gatePairOnce(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, body, ok := fuzzRequest(raw)
		if !ok {
			return
		}
		compareDirect(t, e, "fuzzed", r, body)
	})
}

// TestDirectPreGateRules: the direct path models the rules Coraza evaluates
// before the gate (directPreGate); a configuration with another one (a CRS
// or Coraza update) must fail here, not skip it silently.
func TestDirectPreGateRules(t *testing.T) {
	for _, prot := range []map[policy.Protection]policy.Effect{
		allProtections(policy.EffectPrevent),
		{policy.ProtectionSQLi: policy.EffectAlert},
	} {
		enabled := map[policy.Protection]bool{}
		for p := range prot {
			enabled[p] = true
		}
		d, err := directives(enabled, 1, DefaultInspectionLimit, true, extendedRules)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		var expand func(text string)
		expand = func(text string) {
			for _, l := range logicalLines(text) {
				if inc, ok := strings.CutPrefix(strings.TrimSpace(l), "Include "); ok {
					b, err := fs.ReadFile(crsFS, strings.Trim(inc, `"`))
					if err != nil {
						t.Fatal(err)
					}
					expand(string(b))
					continue
				}
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		expand(d)
		removed := map[int]bool{}
		idRx := regexp.MustCompile(`"id:'?(\d+)`)
		for _, l := range lines {
			if ids, ok := strings.CutPrefix(l, "SecRuleRemoveById "); ok {
				for _, f := range strings.Fields(ids) {
					lo, hi, isRange := strings.Cut(f, "-")
					a, _ := strconv.Atoi(lo)
					b := a
					if isRange {
						b, _ = strconv.Atoi(hi)
					}
					for id := a; id <= b && b-a < 100000; id++ {
						removed[id] = true
					}
				}
			}
		}
		var before []int
		for _, l := range lines {
			if !strings.HasPrefix(l, "SecRule ") && !strings.HasPrefix(l, "SecAction ") {
				continue
			}
			m := idRx.FindStringSubmatch(l)
			if m == nil {
				continue // a chained rule's next level
			}
			id, _ := strconv.Atoi(m[1])
			if id == gateIDs[0] {
				break
			}
			if !removed[id] {
				before = append(before, id)
			}
		}
		slices.Sort(before)
		if !slices.Equal(before, directPreGate) {
			t.Errorf("rules before the gate: %v, the direct path models %v", before, directPreGate)
		}
	}
	b, err := fs.ReadFile(crsFS, "@coraza.conf-recommended")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nSecRequestBodyJsonDepthLimit "+strconv.Itoa(jsonDepthLimit)+"\n") {
		t.Errorf("@coraza.conf-recommended does not set SecRequestBodyJsonDepthLimit %d", jsonDepthLimit)
	}
}

// TestDirectDeclines: what the direct path leaves to Coraza — bodies it
// would parse differently or not at all, requests a rule before the gate
// treats specially, inputs past its bounds, and attacks — while a benign
// twin of each is taken. Every declined request still gets Coraza's
// verdict (the engine without the gate's).
func TestDirectDeclines(t *testing.T) {
	gated, plain := gatePair(t, allProtections(policy.EffectPrevent), 1)
	many := strings.Repeat("p=1&", directMaxArgs+1)
	cases := []struct {
		name, method, target, ctype, body string
		header                            [2]string
		taken                             bool
	}{
		{"benign form", "POST", "/login", "application/x-www-form-urlencoded", "user=bob&remember=on", [2]string{}, true},
		{"benign JSON", "POST", "/api", "application/json", `{"a":"it's fine","n":1}`, [2]string{}, true},
		{"JSON with a charset", "POST", "/events", "application/json; charset=utf-8", `{"type":"order.created","id":"A-17"}`, [2]string{}, true},
		{"benign query", "GET", "/search?q=blue+shoes&size=42", "", "", [2]string{}, true},
		{"JSON that does not parse", "POST", "/api", "application/json", `{"a":[1,{`, [2]string{}, false},
		{"multipart", "POST", "/u", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--b--\r\n", [2]string{}, false},
		{"XML", "POST", "/x", "text/xml", "<a><b>1</b></a>", [2]string{}, false},
		{"two Content-Types", "POST", "/api", "application/json", `{"a":1}`, [2]string{"Content-Type", "text/plain"}, false},
		{"too many query arguments", "GET", "/p?" + many, "", "", [2]string{}, false},
		{"too many form arguments", "POST", "/p", "application/x-www-form-urlencoded", many, [2]string{}, false},
		{"Apache's dummy connection", "GET", "/", "", "", [2]string{"User-Agent", "Apache (internal dummy connection)"}, false},
		{"SQL injection", "GET", "/search?q=" + url.QueryEscape("1' union all select password from users--"), "", "", [2]string{}, false},
		{"XSS in JSON", "POST", "/api", "application/json", `{"q":"<script>alert(1)</script>"}`, [2]string{}, false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		r.Host = "shop.example.com"
		r.RemoteAddr = "10.0.1.17:40000"
		r.Header.Set("User-Agent", "Mozilla/5.0")
		r.Header.Set("Accept", "*/*")
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
			r.Header.Set("Content-Length", strconv.Itoa(len(tc.body)))
		}
		if tc.header[0] != "" {
			r.Header.Add(tc.header[0], tc.header[1])
		}
		g := gated.inspect(r, []byte(tc.body), false)
		if g.direct != tc.taken {
			t.Errorf("%s: taken by the direct path %v, want %v", tc.name, g.direct, tc.taken)
		}
		if gs, ps := matchSummary(g), matchSummary(plain.inspect(r, []byte(tc.body), false)); gs != ps {
			t.Errorf("%s: with the gate\n  %s\nwithout\n  %s", tc.name, gs, ps)
		}
	}
}
