package gate

import (
	"regexp/syntax"
	"strings"
)

// A required-literal prefilter answers "no pattern of this set can match"
// without a set scan, for ASCII values. Every match of a pattern contains
// one of its required literals (requiredLiterals); a value that contains
// none of the literals of any pattern of the set matches none of them, so
// its scan is all zeros. Literals are compared ASCII case-insensitively,
// which only adds candidates. Literals are ASCII, so a non-ASCII byte is
// never part of one: in a UTF-8 set (values are valid UTF-8 when scanned)
// an ASCII rune is its own byte and every other rune is made of bytes
// 0x80-0xFF; in a Latin-1 set every byte is one character. The exceptions
// are Unicode case folding's two non-ASCII runes that fold to ASCII
// letters, the Kelvin sign (k) and the long s (s): a value of a UTF-8 set
// holding either one is always kept. (Base64-decoded cookies and other
// binary values are thus ruled out like text.)
//
// A set gets a prefilter only when every one of its patterns has required
// literals: one pattern without them (anchored classes like ^\d+$) would
// have to be scanned for every value anyway.

// maxLiteral is the length literals are cut to: a prefix of a required
// literal is required too, and shorter literals merge.
const maxLiteral = 8

// literalFilter finds whether a value holds one of a set's literals.
type literalFilter struct {
	// byFirst holds the lower-case literals by their first byte.
	byFirst [128][]string
	// latin1: the set reads bytes (no rune folds to ASCII).
	latin1 bool
}

// newLiteralFilter returns the prefilter of a set's patterns (expressions
// as compiled, Go syntax; latin1 for a set in Latin-1 mode), or nil when
// one of them has no required literal.
func newLiteralFilter(exprs []string, latin1 bool) *literalFilter {
	f := &literalFilter{latin1: latin1}
	seen := map[string]bool{}
	for _, expr := range exprs {
		re, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return nil
		}
		lits, ok := requiredLiterals(re)
		if !ok {
			return nil
		}
		for _, l := range lits {
			if len(l) > maxLiteral {
				l = l[:maxLiteral]
			}
			if !seen[l] {
				seen[l] = true
				f.byFirst[l[0]] = append(f.byFirst[l[0]], l)
			}
		}
	}
	return f
}

// mayMatch reports whether s may match a pattern of the set: true when s
// holds one of the literals, or (UTF-8 sets) a rune that folds to an ASCII
// letter. s must be what the set scans: valid UTF-8 for a UTF-8 set.
func (f *literalFilter) mayMatch(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			if !f.latin1 && foldsToASCII(s[i:]) {
				return true
			}
			continue
		}
		for _, l := range f.byFirst[lowerASCII(c)] {
			if hasPrefixFold(s[i:], l) {
				return true
			}
		}
	}
	return false
}

// foldsToASCII reports whether s starts with a rune that Unicode simple
// case folding maps to an ASCII letter: U+212A KELVIN SIGN (k) or U+017F
// LATIN SMALL LETTER LONG S (s) — the only two (TestFoldsToASCII).
func foldsToASCII(s string) bool {
	return strings.HasPrefix(s, "\u212a") || strings.HasPrefix(s, "\u017f")
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with lit (lower-case ASCII),
// ASCII letters in s compared in either case.
func hasPrefixFold(s, lit string) bool {
	if len(s) < len(lit) {
		return false
	}
	for j := 0; j < len(lit); j++ {
		if lowerASCII(s[j]) != lit[j] {
			return false
		}
	}
	return true
}

// requiredLiterals returns lower-case ASCII literals one of which every
// match of re contains, or false when it cannot tell (re may match without
// a literal, or only with non-ASCII ones). An empty list with true means re
// matches nothing.
func requiredLiterals(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpNoMatch:
		return nil, true
	case syntax.OpLiteral:
		b := make([]byte, 0, len(re.Rune))
		for _, r := range re.Rune {
			if r >= 0x80 {
				return nil, false
			}
			b = append(b, lowerASCII(byte(r)))
		}
		if len(b) == 0 {
			return nil, false
		}
		return []string{string(b)}, true
	case syntax.OpCharClass:
		// A small class of ASCII characters: each one is a literal.
		var out []string
		seen := map[byte]bool{}
		n := 0
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			n += int(hi-lo) + 1
			if n > 6 || hi >= 0x80 {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				if c := lowerASCII(byte(r)); !seen[c] {
					seen[c] = true
					out = append(out, string(c))
				}
			}
		}
		return out, true
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
		return nil, false
	case syntax.OpConcat:
		// Any element's literals are required; take the most selective.
		var best []string
		found := false
		for _, sub := range re.Sub {
			if l, ok := requiredLiterals(sub); ok && (!found || moreSelective(l, best)) {
				best, found = l, true
			}
		}
		return best, found
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			l, ok := requiredLiterals(sub)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, true
	}
	// Empty-width assertions, any character, star and quest: no literal.
	return nil, false
}

// moreSelective prefers longer shortest literals (up to 4 bytes), then
// fewer literals.
func moreSelective(a, b []string) bool {
	ma, mb := min(shortest(a), 4), min(shortest(b), 4)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func shortest(l []string) int {
	m := 1 << 30
	for _, s := range l {
		m = min(m, len(s))
	}
	return m
}
