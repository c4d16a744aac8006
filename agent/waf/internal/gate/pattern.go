package gate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"rsc.io/binaryregexp"
)

// pattern is an @rx argument compiled the way Coraza compiles it: "(?sm)"
// and Go's regexp, or binaryregexp when its escapes spell bytes that are not
// UTF-8.
type pattern struct {
	expr   string // as compiled: with the (?sm) prefix, except byte patterns
	std    *regexp.Regexp
	binary *binaryregexp.Regexp
	setIdx [nSetKinds]int  // index in Program.sets[kind], -1 when not there
	inKind [nSetKinds]bool // which sets levels ask it from
	pm     bool            // a @pm prefilter (in setPM only)
}

func compilePattern(arg string) (*pattern, error) {
	p := &pattern{expr: "(?sm)" + arg, setIdx: [nSetKinds]int{-1, -1, -1, -1}}
	if MatchesBytes(p.expr) {
		b, err := binaryregexp.Compile(arg)
		if err != nil {
			return nil, fmt.Errorf("@rx %q: %w", arg, err)
		}
		p.binary = b
		// Coraza compiles byte patterns without the (?sm) flags: so does
		// the Latin-1 set.
		p.expr = arg
		return p, nil
	}
	std, err := regexp.Compile(p.expr)
	if err != nil {
		return nil, fmt.Errorf("@rx %q: %w", arg, err)
	}
	p.std = std
	return p, nil
}

// match answers one value alone.
func (p *pattern) match(s string) bool {
	if p.binary != nil {
		return p.binary.MatchString(s)
	}
	return p.std.MatchString(s)
}

// submatches returns capture groups 0-8 of the first match, as Coraza's @rx
// captures them, or nil.
func (p *pattern) submatches(s string) []string {
	var m []int
	if p.binary != nil {
		m = p.binary.FindStringSubmatchIndex(s)
	} else {
		m = p.std.FindStringSubmatchIndex(s)
	}
	if m == nil {
		return nil
	}
	return Captures(s, m)
}

// Captures returns groups 0-8 of a match given by its submatch index, as
// Coraza's @rx captures them (at most nine; unmatched groups empty).
func Captures(s string, m []int) []string {
	n := min(len(m)/2, 9)
	out := make([]string, n)
	for i := 0; i < n; i++ {
		if m[2*i] >= 0 {
			out[i] = s[m[2*i]:m[2*i+1]]
		}
	}
	return out
}

// MatchesBytes reports whether a pattern's \xNN escapes spell bytes that are
// not UTF-8, so that it must run on raw bytes (Coraza's rule for @rx).
func MatchesBytes(expr string) bool {
	decoded := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' || i+3 >= len(expr) || expr[i+1] != 'x' {
			decoded = append(decoded, c)
			continue
		}
		sub, advance := expr[i:], 3
		if len(sub) >= 6 && sub[2] == '{' {
			if end := strings.IndexByte(sub, '}'); end != -1 {
				sub, advance = `\x`+sub[3:end], end
			}
		}
		v, multibyte, _, err := strconv.UnquoteChar(sub, 0)
		if err != nil || multibyte {
			decoded = append(decoded, c)
			continue
		}
		decoded = append(decoded, byte(v))
		i += advance
	}
	return !utf8.Valid(decoded)
}
