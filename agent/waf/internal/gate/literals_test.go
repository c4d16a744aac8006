package gate

import (
	"regexp"
	"slices"
	"testing"
	"unicode"
)

func TestRequiredLiterals(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string // nil: no prefilter
	}{
		{`(?i)union\s+select`, []string{"union"}},
		{`abc|de`, []string{"abc", "de"}},
		{`(?i)(?:ab|cd)+x?`, []string{"ab", "cd"}},
		{`a*b`, []string{"b"}},
		{`[<>]script`, []string{"script"}},
		{`[<>]`, []string{"<", ">"}},
		{`(?:ab){2,3}`, []string{"ab"}},
		{`^\d+$`, nil},
		{`a|\w`, nil},
		{`(?:ab)?`, nil},
		{`x{0}`, nil},
		{`é`, nil},
		{`(?i)\x{212a}elvin`, []string{"kelvin"}}, // K folds to k: ASCII values need "kelvin"
		{`\bor\b`, []string{"or"}},
	} {
		f := newLiteralFilter([]string{"(?sm)" + tc.expr}, false)
		if tc.want == nil {
			if f != nil {
				t.Errorf("%s: prefilter %v, want none", tc.expr, f.byFirst)
			}
			continue
		}
		if f == nil {
			t.Errorf("%s: no prefilter, want %q", tc.expr, tc.want)
			continue
		}
		var got []string
		for _, l := range f.byFirst {
			got = append(got, l...)
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: literals %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// TestLiteralFilterSets checks the CRS sets the prefilter applies to: it
// must rule out benign values (or it is worth nothing) and never a value
// a pattern matches (TestSetsMatchGoRegexp* and FuzzSets check the gate's
// answers, prefilter included, against Coraza's regexps).
func TestLiteralFilterSets(t *testing.T) {
	p := compiledCRS(t)
	for _, kind := range []int{setDecoded, setPM} {
		ps := &p.sets[kind]
		if ps.lits == nil {
			t.Fatalf("set %s has no prefilter", kindName(kind))
		}
		for _, v := range []string{"blue garden chair", "sh-42-blu", "o'fallon", "3001"} {
			if ps.lits.mayMatch(v) {
				t.Errorf("set %s: prefilter keeps the benign value %q", kindName(kind), v)
			}
		}
		// Non-ASCII bytes are never part of a literal: benign text in
		// other scripts and binary values (a base64-decoded session ID)
		// are ruled out too, a literal among them is not.
		for _, v := range []string{"\xff\xfe\x80", "caf\u00e9 \u00e9t\u00e9", "S\u00e3o Paulo", "\u0141\u00f3d\u017a", "\xe4\xbd\xa0\xe5\xa5\xbd"} {
			if ps.lits.mayMatch(v) {
				t.Errorf("set %s: prefilter keeps the benign non-ASCII value %q", kindName(kind), v)
			}
		}
		for _, l := range allLiterals(ps.lits) {
			if v := "\u00e9" + l + "\xff"; !ps.lits.mayMatch(v) {
				t.Errorf("set %s: prefilter rules out %q, which holds the literal %q", kindName(kind), v, l)
			}
		}
	}
}

func allLiterals(f *literalFilter) []string {
	var out []string
	for _, l := range f.byFirst {
		out = append(out, l...)
	}
	return out
}

// TestFoldsToASCII: the Kelvin sign and the long s are the only runes
// outside ASCII that Unicode simple folding relates to an ASCII letter;
// a UTF-8 set keeps values holding them, a Latin-1 set (where neither is
// one character) does not need to.
func TestFoldsToASCII(t *testing.T) {
	var folding []rune
	for r := rune(0); r < 0x80; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f >= 0x80 && !slices.Contains(folding, f) {
				folding = append(folding, f)
			}
		}
	}
	slices.Sort(folding)
	if want := []rune{0x17f, 0x212a}; !slices.Equal(folding, want) {
		t.Fatalf("runes folding to ASCII letters: %U, want %U", folding, want)
	}
	for _, r := range folding {
		if !foldsToASCII(string(r) + "x") {
			t.Errorf("foldsToASCII(%U) = false", r)
		}
	}
	if foldsToASCII("\u00e9") || foldsToASCII("\xe2\x84") {
		t.Error("foldsToASCII holds for other runes")
	}
	for _, tc := range []struct {
		expr, value string
	}{
		{`(?i)kelvin`, "\u212aELVIN"},
		{`(?i)select`, "\u017fELECT"},
		{`(?i)ask`, "A\u017f\u212a"},
	} {
		if !regexp.MustCompile(tc.expr).MatchString(tc.value) {
			t.Fatalf("%s does not match %q", tc.expr, tc.value)
		}
		if f := newLiteralFilter([]string{tc.expr}, false); !f.mayMatch(tc.value) {
			t.Errorf("%s: prefilter rules out %q", tc.expr, tc.value)
		}
	}
}

// FuzzRequiredLiterals: whenever an expression with a prefilter matches an
// ASCII value, the prefilter keeps the value.
func FuzzRequiredLiterals(f *testing.F) {
	for _, s := range [][2]string{
		{`(?i)union\s+select`, "UNION  SELECT"},
		{`(?:ab|c[de])+[xy]z`, "cdabyz"},
		{`\bor\b|and`, "a or b"},
		{`(?i)k+s`, "KKS"},
		{`(?i)k+s`, "\u212a\u017f"},
		{`caf[e\x{e9}]|union`, "caf\xe9"},
		{`a{2,}b?c`, "aac"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, expr, s string) {
		re, err := regexp.Compile("(?sm)" + expr)
		if err != nil {
			return
		}
		// UTF-8 set: Go's regexp reads invalid bytes as U+FFFD, which is
		// never part of an (ASCII) literal.
		if lf := newLiteralFilter([]string{"(?sm)" + expr}, false); lf != nil && re.MatchString(s) && !lf.mayMatch(s) {
			t.Fatalf("%q matches %q but the prefilter rules it out (literals %q)", expr, s, allLiterals(lf))
		}
		// Latin-1 set: every byte is one character (U+0000-U+00FF).
		latin := make([]rune, len(s))
		for i := 0; i < len(s); i++ {
			latin[i] = rune(s[i])
		}
		if lf := newLiteralFilter([]string{"(?sm)" + expr}, true); lf != nil && re.MatchString(string(latin)) && !lf.mayMatch(s) {
			t.Fatalf("%q matches %q read as Latin-1 but the prefilter rules it out (literals %q)", expr, s, allLiterals(lf))
		}
	})
}
