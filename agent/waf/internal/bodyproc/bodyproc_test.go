package bodyproc

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types/variables"
)

func init() {
	// The copies under other names: this test binary keeps Coraza's own
	// "json" and "urlencoded" to compare with.
	plugins.RegisterBodyProcessor("tgjson", func() plugintypes.BodyProcessor { return &jsonBodyProcessor{} })
	plugins.RegisterBodyProcessor("tgurlencoded", func() plugintypes.BodyProcessor { return &urlencodedBodyProcessor{} })
}

// pair is Coraza's WAF and the same configuration with the copies, for one
// argument limit and JSON depth limit.
type pair struct{ coraza, copies coraza.WAF }

func newPair(tb testing.TB, argLimit, depth int) pair {
	tb.Helper()
	conf := func(json, form string) string {
		return fmt.Sprintf(`SecRuleEngine On
SecRequestBodyAccess On
SecArgumentsLimit %d
SecRequestBodyJsonDepthLimit %d
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=%s"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/x-www-form-urlencoded" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=%s"
`, argLimit, depth, json, form)
	}
	var p pair
	var err error
	if p.coraza, err = coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(conf("JSON", "URLENCODED"))); err != nil {
		tb.Fatal(err)
	}
	if p.copies, err = coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(conf("TGJSON", "TGURLENCODED"))); err != nil {
		tb.Fatal(err)
	}
	return p
}

// state runs a request body through a WAF and returns every variable of
// the transaction but REQBODY_PROCESSOR (the processor's name), sorted.
func state(tb testing.TB, waf coraza.WAF, ctype, body string) []string {
	tb.Helper()
	tx := waf.NewTransaction()
	defer tx.Close()
	tx.ProcessURI("/p", "POST", "HTTP/1.1")
	tx.AddRequestHeader("Content-Type", ctype)
	tx.ProcessRequestHeaders()
	if _, _, err := tx.WriteRequestBody([]byte(body)); err != nil {
		tb.Fatal(err)
	}
	if _, err := tx.ProcessRequestBody(); err != nil {
		tb.Fatal(err)
	}
	var out []string
	tx.(plugintypes.TransactionState).Variables().All(func(v variables.RuleVariable, col collection.Collection) bool {
		switch v {
		case variables.ReqbodyProcessor, variables.UniqueID, variables.Duration,
			variables.Time, variables.TimeDay, variables.TimeEpoch, variables.TimeHour, variables.TimeMin,
			variables.TimeMon, variables.TimeSec, variables.TimeWday, variables.TimeYear:
			return true
		}
		for _, m := range col.FindAll() {
			val := m.Value()
			if v == variables.ReqbodyErrorMsg {
				// Coraza prefixes the processor's name.
				val = strings.TrimPrefix(val, "TG")
			}
			out = append(out, fmt.Sprintf("%s:%q=%q", v.Name(), m.Key(), val))
		}
		return true
	})
	slices.Sort(out)
	return out
}

func (p pair) check(t *testing.T, ctype, body string) {
	t.Helper()
	want := state(t, p.coraza, ctype, body)
	got := state(t, p.copies, ctype, body)
	// Coraza is not deterministic where keys differ only in case: its form
	// processor Sets each key in map order into a case-insensitive
	// collection, so the last of "a" and "A" wins and the other's values
	// are not inspected (a bypass, "Q=<script>…&q=x"). The copy keeps every
	// pair (urlencoded.go): it holds all of Coraza's values and more; only
	// the combined size differs.
	if ctype == ctForm && caseFolds(body) {
		for _, w := range want {
			if !slices.Contains(got, w) && !strings.HasPrefix(w, "ARGS_COMBINED_SIZE:") {
				t.Fatalf("form body %.200q: Coraza has %q, the copy not", body, w)
			}
		}
		return
	}
	for i := 0; i < 32 && !slices.Equal(got, want); i++ {
		want = state(t, p.coraza, ctype, body)
	}
	if !slices.Equal(got, want) {
		var only []string
		for _, g := range got {
			if !slices.Contains(want, g) {
				only = append(only, "copies: "+g)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				only = append(only, "coraza: "+w)
			}
		}
		t.Fatalf("%s body %.200q: %d variables from the copies, %d from Coraza; differing: %.2000q", ctype, body, len(got), len(want), only)
	}
}

// caseFolds reports whether a form body has two names that differ only in
// case (the pairs Coraza's URL-encoded processor drops).
func caseFolds(body string) bool {
	pairs, _ := ParseQueryOrdered(body, '&', 0)
	seen := map[string]string{}
	for _, kv := range pairs {
		l := strings.ToLower(kv.Key)
		if k, ok := seen[l]; ok && k != kv.Key {
			return true
		}
		seen[l] = kv.Key
	}
	return false
}

// TestCaseFoldedNamesKept: every pair of a form body is in ARGS_POST, names
// that differ only in case and empty names included.
func TestCaseFoldedNamesKept(t *testing.T) {
	p := newPair(t, 1000, 1024)
	got := state(t, p.copies, ctForm, "Q=%3Cscript%3E&q=hello&=a&=b&q=again")
	var post []string
	for _, l := range got {
		if strings.HasPrefix(l, "ARGS_POST:") {
			post = append(post, l)
		}
	}
	want := []string{`ARGS_POST:""="a"`, `ARGS_POST:""="b"`, `ARGS_POST:"Q"="<script>"`, `ARGS_POST:"q"="again"`, `ARGS_POST:"q"="hello"`}
	if !slices.Equal(post, want) {
		t.Fatalf("ARGS_POST %q, want %q", post, want)
	}
}

const (
	ctJSON = "application/json"
	ctForm = "application/x-www-form-urlencoded"
)

// TestSameAsCoraza compares the copies with Coraza's processors on bodies
// that reach every branch: nested JSON, arrays, nulls, numbers, invalid
// JSON, the depth limit, the argument limit, the byte budget, escapes,
// repeated keys, empty keys and bodies larger than a read buffer.
func TestSameAsCoraza(t *testing.T) {
	big := strings.Repeat("x", 70_000)
	jsonBodies := []string{
		`{"items":[{"sku":"SH-40-BLU","qty":2},{"sku":"HT-7","qty":1}],"shipping":{"city":"Köln","zip":"01234"},"note":"it's for blue, leave at the door"}`,
		`[1,2,[3,[4,null,true,false]],{"a":{"b":{"c":"d"}}}]`,
		`{"a":1,"A":2,"a":3}`, `{"":""}`, `{}`, `[]`, ``, `   `, `"str"`, `42`, `null`,
		`{"a":`, `{"a":1}}`, `{"a":"\u00e9\n\"q\""}`, `{"a":[[[[[[[[[[1]]]]]]]]]]}`,
		`{"k":"` + big + `"}`, `{"` + big + `":1}`,
		`{"a":[` + strings.Repeat(`"v",`, 2000) + `"v"]}`,
		`{"a":"x\ud800y"}`, "{\"a\":\"\xff\xfe\"}", `{"1":{"2":[{"3":4.5e10}]}}`,
	}
	formBodies := []string{
		"user=blue1%40example.com&password=correct+horse+hat+42&remember=on",
		"a=1&a=2&A=3", "=x&&&b", "a=%zz&b=%4&c=%41%42+%", "noequals", "", "a==b=c",
		"k=" + big, strings.Repeat("p=1&", 3000), "a=%00%ff&%e9t%C3%A9=1", "a;b=c&d",
	}
	for _, lim := range []struct{ args, depth int }{{1000, 1024}, {5, 3}, {1, 1}} {
		p := newPair(t, lim.args, lim.depth)
		for _, b := range jsonBodies {
			p.check(t, ctJSON, b)
		}
		for _, b := range formBodies {
			p.check(t, ctForm, b)
		}
	}
}

// TestSameAsCorazaCorpus sends every line of the libinjection corpus as a
// form value, a form body and a JSON string through both.
func TestSameAsCorazaCorpus(t *testing.T) {
	files, err := filepath.Glob("../../../../../shared/corpora/libinjection/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("libinjection corpus: %v (%d files)", err, len(files))
	}
	p := newPair(t, 1000, 1024)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if i%5 != 0 || line == "" {
				continue
			}
			p.check(t, ctForm, "q="+url.QueryEscape(line)+"&x=1")
			p.check(t, ctForm, line)
			p.check(t, ctJSON, `{"q":"`+line+`"}`)
			n++
		}
	}
	t.Logf("%d corpus lines", n)
}

// FuzzSameAsCoraza compares the copies with Coraza's processors on
// arbitrary bodies.
func FuzzSameAsCoraza(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":null}]}`, "a=1&b=%41+c", `[[[`, "=&="} {
		f.Add(s, true)
		f.Add(s, false)
	}
	p := newPair(f, 20, 4)
	f.Fuzz(func(t *testing.T, body string, json bool) {
		ct := ctForm
		if json {
			ct = ctJSON
		}
		p.check(t, ct, body)
	})
}

// TestReadAllStringBody: a StringBody gives what a strings.Reader would,
// from where it was read to, and is at its end afterwards.
func TestReadAllStringBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		read int
	}{{"", 0}, {"a=1&b=2", 0}, {"a=1&b=2", 3}, {"a=1&b=2", 7}} {
		want, err := readAll(struct{ io.Reader }{strings.NewReader(tc.body[tc.read:])})
		if err != nil {
			t.Fatal(err)
		}
		sb := NewStringBody(tc.body)
		if _, err := io.ReadFull(sb, make([]byte, tc.read)); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(sb)
		if err != nil || got != want {
			t.Errorf("%q after %d bytes: %q, %v; want %q", tc.body, tc.read, got, err, want)
		}
		if n, err := sb.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("%q: read %d, %v after readAll; want 0, EOF", tc.body, n, err)
		}
	}
}
