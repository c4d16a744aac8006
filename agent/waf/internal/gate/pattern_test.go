package gate

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"rsc.io/binaryregexp"

	"github.com/taskguard/taskguard/agent/waf/internal/ruleops"
	"github.com/taskguard/taskguard/internal/testenv"
)

// The RE2 sets answer most @rx evaluations of the gate. A set that says "no
// match" where Coraza's regexp matches would make the gate call an attack
// clean, and one that says "match" where Coraza does not would do the same
// for a negated operator (!@rx). These tests compile the gate over every
// request rule of the embedded CRS and compare, for every pattern in every
// set, the set's answer with the answer of the expression Coraza compiles.

// crsConfig gates every request rule file of CRS (paranoia level 4, so no
// rule is skipped at load time).
const crsConfig = `Include @coraza.conf-recommended
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=4"
Include @owasp_crs/REQUEST-901-INITIALIZATION.conf
SecRule REQUEST_METHOD "@unconditionalMatch" "id:9000001,phase:1,pass,nolog,t:none,skipAfter:GATE-END"
SecRule REQUEST_METHOD "@unconditionalMatch" "id:9000002,phase:2,pass,nolog,t:none,skipAfter:GATE-END"
Include @owasp_crs/REQUEST-91*.conf
Include @owasp_crs/REQUEST-92*.conf
Include @owasp_crs/REQUEST-93*.conf
Include @owasp_crs/REQUEST-94*.conf
SecMarker GATE-END
`

var crsProgram = sync.OnceValues(func() (*Program, error) {
	return Compile(coreruleset.FS, crsConfig, Options{GateIDs: []int{9000001, 9000002}, EndMarker: "GATE-END"})
})

func compiledCRS(t testing.TB) *Program {
	t.Helper()
	p, err := crsProgram()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// corazaRx is @rx as Coraza v3.8.1 compiles it (internal/operators/rx.go):
// "(?sm)" and Go's regexp, or, when the expression spells bytes that are not
// UTF-8, binaryregexp on the argument alone, without the flags.
type corazaRx func(string) bool

var corazaRxs sync.Map // expr -> corazaRx

func corazaMatcher(t testing.TB, pat *pattern) corazaRx {
	if m, ok := corazaRxs.Load(pat.expr); ok {
		return m.(corazaRx)
	}
	arg := strings.TrimPrefix(pat.expr, "(?sm)")
	var m corazaRx
	if MatchesBytes("(?sm)" + arg) {
		re, err := binaryregexp.Compile(arg)
		if err != nil {
			t.Fatal(err)
		}
		m = re.MatchString
	} else {
		re, err := regexp.Compile("(?sm)" + arg)
		if err != nil {
			t.Fatal(err)
		}
		m = re.MatchString
	}
	corazaRxs.Store(pat.expr, m)
	return m
}

// checkSets compares, for s, every set's answer and the gate's answer
// (Program.rx, with its memo and fallbacks) with Coraza's expression, for
// every pattern of every set, and every pattern the sets left out.
func checkSets(t testing.TB, p *Program, s string) {
	t.Helper()
	sc := p.scratch.Get().(*scratch)
	defer sc.release()
	for kind := range nSetKinds {
		if kind == setPM {
			continue // prefilters: checked against their operators below
		}
		ps := &p.sets[kind]
		var got map[int]bool
		if ps.set != nil {
			in := s
			if kind != setLatin1 && !utf8.ValidString(s) {
				in = validUTF8(s)
			}
			ids, err := ps.set.FindAllStringWithError(in, -1)
			if err == nil {
				got = map[int]bool{}
				for _, id := range ids {
					got[id] = true
				}
			}
		}
		for i, pat := range ps.pats {
			want := corazaMatcher(t, pat)(s)
			if got != nil && got[i] != want {
				t.Errorf("set %s: pattern %q on %s: set says %v, Coraza %v", kindName(kind), pat.expr, quoteShort(s), got[i], want)
			}
			if gate := sc.rx(pat, kind, s, nil); gate != want {
				t.Errorf("gate rx %s: pattern %q on %s: gate says %v, Coraza %v", kindName(kind), pat.expr, quoteShort(s), gate, want)
			}
		}
	}
	for _, pat := range p.pats {
		if want, got := corazaMatcher(t, pat)(s), pat.match(s); got != want {
			t.Errorf("pattern %q on %s: gate's compiled pattern says %v, Coraza %v", pat.expr, quoteShort(s), got, want)
		}
	}
	// A @pm prefilter must match whenever its operator does.
	for _, ph := range p.phases {
		for _, r := range ph {
			for _, l := range r.levels {
				if l.pmPat == nil {
					continue
				}
				if l.op.Match(s) && !sc.mayContain(l.pmPat, s, nil) {
					t.Errorf("rule %d: @%s %s matches %s, its prefilter does not", r.id, l.opName, l.arg, quoteShort(s))
				}
			}
		}
	}
}

func kindName(kind int) string {
	return [...]string{"text", "decoded", "latin-1", "pm"}[kind]
}

func quoteShort(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return strconv.Quote(s)
}

// patternInputs are values that probe where RE2 and Go's regexp may part:
// non-ASCII case folding, invalid UTF-8, NUL, line anchors, long values.
var patternInputs = []string{
	"",
	"a",
	"select * from users where id=1 or 1=1--",
	"<script>alert(1)</script>",
	"../../etc/passwd",
	"; cat /etc/passwd",
	"() { :; }; echo vulnerable",
	"${jndi:ldap://x/a}",
	"<?php system($_GET['c']); ?>",
	"union all select null,null,@@version#",
	"javascript:alert`1`",
	"café naïve Ünïcödé",
	"日本語のテキスト SELECT 文",
	"\u212a\u212a kelvin \u212aey",       // KELVIN SIGN folds to k
	"\u017felect \u017fcript unio\u017f", // LONG S folds to s
	"\ufffd\ufffd replacement",
	"\xff",
	"\xffselect\xff",
	"\xe2\x82", // truncated 3-byte sequence
	"\xe2\x82 union select 1",
	"\xc0\xaf../\xc0\xae\xc0\xae/",
	"\xf0\x9f\x98", // truncated 4-byte sequence
	"\xed\xa0\x80", // surrogate
	"a\x00b",
	"\x00<script>\x00",
	"select\x00from",
	"line one\nunion select 1\nline three",
	"\n",
	"\r\n\r\n",
	"x\n<script>",
	"\nSELECT\n",
	"%u0022%uff1cscript%uff1e",
	"\xa0\xad\x85 latin-1 bytes \xe9\xfc",
	"\x85\xa0",
	"\x01\x02\x03\x1f\x7f",
	"$x(\n)", // '.' across a newline in a byte pattern
	"$a{\nb}(c)",
	"$f(1)\n",
	"\xbc/x\n\xbe",
	"gopher\n:",
	strings.Repeat("a", 100<<10),
	strings.Repeat("' or 1=1 -- ", 16<<10/12),
	strings.Repeat("é<", 8<<10) + "script>",
	strings.Repeat("\xff\n", 8<<10) + "/etc/passwd",
}

func TestSetsMatchGoRegexp(t *testing.T) {
	p := compiledCRS(t)
	t.Log(p.Stats())
	for _, s := range patternInputs {
		if testing.Short() && len(s) > 4<<10 {
			continue // Go's regexp takes seconds on the long values
		}
		checkSets(t, p, s)
	}
}

// TestSetsMatchGoRegexpCorpus replays a sample of the libinjection corpus
// lines as they are, and with a few variations that reach
// the non-ASCII and invalid-UTF-8 paths.
func TestSetsMatchGoRegexpCorpus(t *testing.T) {
	p := compiledCRS(t)
	files, _ := filepath.Glob(filepath.Join(testenv.SharedDir(t), "corpora", "libinjection", "*.txt"))
	if len(files) == 0 {
		t.Fatal("no libinjection corpus")
	}
	step := 40 // about 500 lines: every pattern costs Go's regexp a scan
	if testing.Short() {
		step = 200
	}
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			n++
			if n%step != 0 {
				continue
			}
			line := sc.Text()
			checkSets(t, p, line)
			switch n / step % 4 {
			case 1:
				checkSets(t, p, "\xff"+line)
			case 2:
				checkSets(t, p, strings.ReplaceAll(line, " ", "\n"))
			case 3:
				checkSets(t, p, strings.ReplaceAll(strings.ReplaceAll(line, "s", "\u017f"), "k", "\u212a"))
			}
			if t.Failed() {
				fh.Close()
				return
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzSets(f *testing.F) {
	for _, s := range patternInputs {
		if len(s) < 1<<10 {
			f.Add(s)
		}
	}
	p := compiledCRS(f)
	f.Fuzz(func(t *testing.T, s string) {
		checkSets(t, p, s)
	})
}

// TestPMPrefilterPhrases puts every phrase of every @pm operator into a
// value, in several cases: the operator matches, and its prefilter must too.
func TestPMPrefilterPhrases(t *testing.T) {
	p := compiledCRS(t)
	sc := p.scratch.Get().(*scratch)
	defer sc.release()
	n := 0
	for _, ph := range p.phases {
		for _, r := range ph {
			for _, l := range r.levels {
				if l.pmPat == nil {
					continue
				}
				phrases, _ := ruleops.Phrases(l.op)
				for _, ph := range phrases {
					for _, v := range []string{ph, "x " + asciiUpper(ph) + " y", "é" + mixedCase(ph) + "\xff"} {
						n++
						if !l.op.Match(v) {
							t.Fatalf("rule %d: @%s does not match its own phrase in %q", r.id, l.opName, v)
						}
						if !sc.mayContain(l.pmPat, v, nil) {
							t.Errorf("rule %d: prefilter misses phrase %q in %q", r.id, ph, v)
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no @pm operator with a prefilter")
	}
	t.Logf("%d values", n)
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func mixedCase(s string) string {
	b := []byte(s)
	for i := range b {
		if i%2 == 0 && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}
