package gate

import (
	"regexp/syntax"
	"unicode"
)

// Alphabet prefilter: most values of benign traffic are made of a few ASCII
// byte classes (numbers, hex session IDs, words, file names). A pattern
// that cannot match any string over a value's alphabet cannot match the
// value: the substring a match covers is made of the value's characters,
// and zero-width assertions (^, $, \b) only restrict a match further. For a
// few alphabets the set keeps the patterns that might match a string over
// it; a value inside one of them is answered by those patterns alone (Go's
// regexp, as Coraza), or at once when there is none, without a set scan.
// TestAlphabetPrefilter checks the analysis on random values and the
// answers against Coraza's expressions (checkSets).

// maxAlphaCandidates bounds the patterns answered one by one (Go's regexp)
// instead of one set scan: measured (BenchmarkScanAlphabet), ten Go
// regexps on a short value cost about one scan of the text set, so only
// sets with at most two candidates are answered without a scan — in
// practice the byte, decoded and @pm prefilter sets, which no pattern or
// one of them can match for numbers, hex IDs and words.
const maxAlphaCandidates = 2

// alphabets are the ASCII alphabets tried, smallest first; a value is
// answered by the first that holds every byte of it.
var alphabets = func() [][128]bool {
	specs := []string{
		"0123456789",
		"0123456789abcdef",
		"0123456789abcdefABCDEF",
		"0123456789abcdefghijklmnopqrstuvwxyz",
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.-",
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.-/",
	}
	out := make([][128]bool, len(specs))
	for i, s := range specs {
		for _, c := range s {
			out[i][c] = true
		}
	}
	return out
}()

// alphabetOf returns the index of the first alphabet holding every byte of
// s, or -1.
func alphabetOf(s string) int {
	var seen [2]uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 128 {
			return -1
		}
		seen[c/64] |= 1 << (c % 64)
	}
	for k, m := range alphabetMasks {
		if seen[0]&^m[0] == 0 && seen[1]&^m[1] == 0 {
			return k
		}
	}
	return -1
}

// alphabetMasks are the alphabets as bit masks of their bytes.
var alphabetMasks = func() [][2]uint64 {
	out := make([][2]uint64, len(alphabets))
	for k, a := range alphabets {
		for c, ok := range a {
			if ok {
				out[k][c/64] |= 1 << (c % 64)
			}
		}
	}
	return out
}()

// mayMatchOver reports whether the pattern may match some string made of
// the alphabet's characters only (true when it cannot tell).
// Byte patterns (Latin-1) parse the same: a \xNN escape is rune U+00NN,
// outside every alphabet as byte NN is.
func mayMatchOver(expr string, alpha *[128]bool) bool {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return true
	}
	return canMatch(re, alpha)
}

// inAlpha reports whether rune r (or, with fold, a rune of its case orbit)
// is in the alphabet.
func inAlpha(r rune, fold bool, alpha *[128]bool) bool {
	if r >= 0 && r < 128 && alpha[r] {
		return true
	}
	if !fold {
		return false
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f >= 0 && f < 128 && alpha[f] {
			return true
		}
	}
	return false
}

// canMatch over-approximates: whether re matches some string over alpha.
func canMatch(re *syntax.Regexp, alpha *[128]bool) bool {
	switch re.Op {
	case syntax.OpNoMatch:
		return false
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if !inAlpha(r, re.Flags&syntax.FoldCase != 0, alpha) {
				return false
			}
		}
		return true
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			for r := max(lo, 0); r <= hi && r < 128; r++ {
				if alpha[r] {
					return true
				}
			}
		}
		return false
	case syntax.OpAnyCharNotNL:
		for c, ok := range alpha {
			if ok && c != '\n' {
				return true
			}
		}
		return false
	case syntax.OpAnyChar:
		return true
	case syntax.OpCapture, syntax.OpPlus:
		return canMatch(re.Sub[0], alpha)
	case syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpRepeat:
		return re.Min == 0 || canMatch(re.Sub[0], alpha)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !canMatch(s, alpha) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if canMatch(s, alpha) {
				return true
			}
		}
		return false
	}
	return true
}

// AlphabetReport returns, per set kind and alphabet, how many of the set's
// patterns may match a string over the alphabet (for tests and tuning).
func (p *Program) AlphabetReport() [nSetKinds][]int {
	var out [nSetKinds][]int
	for kind := range nSetKinds {
		ps := &p.sets[kind]
		for k := range alphabets {
			n := 0
			for _, pat := range ps.pats {
				if mayMatchOver(pat.expr, &alphabets[k]) {
					n++
				}
			}
			out[kind] = append(out[kind], n)
		}
	}
	return out
}
