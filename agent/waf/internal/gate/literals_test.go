package gate

import (
	"regexp"
	"slices"
	"testing"
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
		f := newLiteralFilter([]string{"(?sm)" + tc.expr})
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
		for _, v := range []string{"\xff", "caf\u00e9"} {
			if !ps.lits.mayMatch(v) {
				t.Errorf("set %s: prefilter rules out the non-ASCII value %q", kindName(kind), v)
			}
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
		{`a{2,}b?c`, "aac"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, expr, s string) {
		re, err := regexp.Compile("(?sm)" + expr)
		if err != nil {
			return
		}
		lf := newLiteralFilter([]string{"(?sm)" + expr})
		if lf == nil {
			return
		}
		if re.MatchString(s) && !lf.mayMatch(s) {
			t.Fatalf("%q matches %q but the prefilter rules it out (literals %q)", expr, s, lf.byFirst)
		}
	})
}
