// Copyright 2022 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0
// Ported from Coraza v3.8.1 internal/operators; see NOTICE.

package ruleops

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/corazawaf/libinjection-go"
	ahocorasick "github.com/petar-dambovaliev/aho-corasick"
)

// Operator is a SecLang operator (@name argument) bound to its argument.
// Match reports whether the operator matches value, as Coraza's
// plugintypes.Operator.Evaluate does (before a rule's negation "!").
// Implementations are safe for concurrent use and capture nothing.
type Operator interface {
	Match(value string) bool
}

// operatorFactory builds an operator from its argument and the file system
// that data files are read from.
type operatorFactory func(argument string, root fs.FS) (Operator, error)

// operators maps names to factories. Names are case-sensitive, as in Coraza.
var operators = map[string]operatorFactory{
	"pm":                   newPM,
	"pmFromFile":           newPMFromFile,
	"pmf":                  newPMFromFile,
	"within":               textOperator(func(arg, v string) bool { return strings.Contains(arg, v) }),
	"streq":                textOperator(func(arg, v string) bool { return arg == v }),
	"contains":             textOperator(func(arg, v string) bool { return strings.Contains(v, arg) }),
	"strmatch":             textOperator(func(arg, v string) bool { return strings.Contains(v, arg) }),
	"beginsWith":           textOperator(func(arg, v string) bool { return strings.HasPrefix(v, arg) }),
	"endsWith":             textOperator(func(arg, v string) bool { return strings.HasSuffix(v, arg) }),
	"eq":                   numberOperator(func(arg, v int) bool { return arg == v }),
	"ge":                   numberOperator(func(arg, v int) bool { return v >= arg }),
	"gt":                   numberOperator(func(arg, v int) bool { return arg < v }),
	"le":                   numberOperator(func(arg, v int) bool { return v <= arg }),
	"lt":                   numberOperator(func(arg, v int) bool { return v < arg }),
	"validateByteRange":    newValidateByteRange,
	"validateUrlEncoding":  fixed(matchFunc(validateURLEncoding)),
	"validateUtf8Encoding": fixed(matchFunc(func(v string) bool { return !utf8.ValidString(v) })),
	"detectSQLi":           fixed(matchFunc(func(v string) bool { res, _ := libinjection.IsSQLi(v); return res })),
	"detectXSS":            fixed(matchFunc(libinjection.IsXSS)),
	"unconditionalMatch":   fixed(matchFunc(func(string) bool { return true })),
	"noMatch":              fixed(matchFunc(func(string) bool { return false })),
	"ipMatch":              newIPMatch,
}

// NewOperator returns the operator called name (case-sensitive, without the
// "@") bound to argument, which must already be macro-expanded and trimmed of
// surrounding spaces as Coraza's rule parser does. @rx is not provided.
//
// root is where @pmFromFile reads its data files: it plays the role of the
// directory of the configuration file that declares the rule (Coraza's
// OperatorOptions.Path[0] joined to Root). For CRS pass
// fs.Sub(coreruleset.FS, "@owasp_crs").
//
// Unlike Coraza, an empty argument is accepted by the operators whose argument
// is a macro (streq, contains, eq, ...): Coraza rejects an empty literal when it
// parses the rule but a macro may expand to "" at run time, and then compares
// with "".
func NewOperator(name, argument string, root fs.FS) (Operator, error) {
	f, ok := operators[name]
	if !ok {
		return nil, fmt.Errorf("operator %s not found", name)
	}
	return f(argument, root)
}

// matchFunc adapts a function to Operator.
type matchFunc func(value string) bool

// Match implements Operator.
func (f matchFunc) Match(value string) bool { return f(value) }

// fixed returns a factory for an operator that ignores its argument.
func fixed(op Operator) operatorFactory {
	return func(string, fs.FS) (Operator, error) { return op, nil }
}

// textOperator returns a factory for an operator that compares the expanded
// argument with the value by cmp(argument, value).
func textOperator(cmp func(arg, value string) bool) operatorFactory {
	return func(arg string, _ fs.FS) (Operator, error) {
		return matchFunc(func(v string) bool { return cmp(arg, v) }), nil
	}
}

// numberOperator returns a factory for eq, ge, gt, le and lt: both sides are
// parsed with strconv.Atoi and a side that does not parse counts as 0.
func numberOperator(cmp func(arg, value int) bool) operatorFactory {
	return func(arg string, _ fs.FS) (Operator, error) {
		a, _ := strconv.Atoi(arg)
		return matchFunc(func(v string) bool {
			n, _ := strconv.Atoi(v)
			return cmp(a, n)
		}), nil
	}
}

// pm is @pm and @pmFromFile: case-insensitive Aho-Corasick search.
type pm struct {
	phrases []string // lower case, as given to the automaton
	matcher ahocorasick.AhoCorasick
	// minLen is the length of the shortest pattern. If the input is shorter
	// than this, no pattern can match and we skip the Aho-Corasick automaton.
	minLen int
}

func newPM(data string, _ fs.FS) (Operator, error) {
	data = strings.ToLower(data)
	dict := strings.Split(data, " ")
	builder := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{
		AsciiCaseInsensitive: true,
		MatchOnlyWholeWords:  false,
		MatchKind:            ahocorasick.LeftMostLongestMatch,
		DFA:                  true,
	})
	return &pm{phrases: dict, matcher: builder.Build(dict), minLen: minPatternLen(dict)}, nil
}

func newPMFromFile(filepath string, root fs.FS) (Operator, error) {
	data, err := loadFromFile(filepath, []string{"."}, root)
	if err != nil {
		return nil, err
	}

	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := sc.Text()
		l = strings.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if l[0] == '#' {
			continue
		}
		lines = append(lines, strings.ToLower(l))
	}

	builder := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{
		AsciiCaseInsensitive: true,
		MatchOnlyWholeWords:  false,
		MatchKind:            ahocorasick.LeftMostLongestMatch,
		DFA:                  false,
	})
	return &pm{phrases: lines, matcher: builder.Build(lines), minLen: minPatternLen(lines)}, nil
}

// Phrases returns the phrases of an @pm or @pmFromFile operator (lower
// case; the operator matches when one occurs in the value, ASCII letters in
// any case), and false for other operators.
func Phrases(op Operator) ([]string, bool) {
	if p, ok := op.(*pm); ok {
		return p.phrases, true
	}
	return nil, false
}

// Match implements Operator.
func (o *pm) Match(value string) bool {
	if len(value) < o.minLen {
		return false
	}
	return o.matcher.Iter(value).Next() != nil
}

// minPatternLen returns the length of the shortest pattern.
// If any pattern is empty it returns 0 immediately, disabling short-circuiting:
// an empty pattern matches every input, so no input can be safely skipped.
// If there are no patterns, it returns 0.
func minPatternLen(patterns []string) int {
	min := 0
	for _, p := range patterns {
		if len(p) == 0 {
			return 0
		}
		if min == 0 || len(p) < min {
			min = len(p)
		}
	}
	return min
}

var errEmptyDirs = errors.New("empty dirs")

func loadFromFile(filepath string, dirs []string, root fs.FS) ([]byte, error) {
	if path.IsAbs(filepath) {
		return fs.ReadFile(root, filepath)
	}

	if len(dirs) == 0 {
		return nil, errEmptyDirs
	}

	var (
		content []byte
		err     error
	)

	for _, p := range dirs {
		absFilepath := path.Join(p, filepath)
		content, err = fs.ReadFile(root, absFilepath)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}

		return content, nil
	}

	return nil, err
}

// validateByteRange is @validateByteRange: it matches a non-empty value with
// a byte outside the ranges.
type validateByteRange struct {
	validBytes [256]bool // array, not slice, so don't pass as-is to functions
}

func newValidateByteRange(data string, _ fs.FS) (Operator, error) {
	if data == "" {
		return matchFunc(func(string) bool { return true }), nil
	}
	var validBytes [256]bool
	for _, br := range strings.Split(data, ",") {
		br = strings.TrimSpace(br)
		start, end, ok := strings.Cut(br, "-")
		if !ok {
			b, err := strconv.Atoi(start)
			if err != nil {
				return nil, err
			}
			if err := validateByte(b); err != nil {
				return nil, err
			}
			validBytes[b] = true
			continue
		}
		s, err := strconv.Atoi(start)
		if err != nil {
			return nil, err
		}
		if err := validateByte(s); err != nil {
			return nil, err
		}
		e, err := strconv.Atoi(end)
		if err != nil {
			return nil, err
		}
		if err := validateByte(e); err != nil {
			return nil, err
		}
		for i := s; i <= e; i++ {
			validBytes[i] = true
		}
	}
	return &validateByteRange{validBytes: validBytes}, nil
}

func validateByte(b int) error {
	if b < 0 || b > 255 {
		return fmt.Errorf("invalid byte %d", b)
	}
	return nil
}

// Match implements Operator.
func (o *validateByteRange) Match(data string) bool {
	if data == "" {
		return false
	}
	for i := 0; i < len(data); i++ {
		if !o.validBytes[data[i]] {
			return true
		}
	}
	return false
}

// validateURLEncoding is @validateUrlEncoding: it matches a non-empty value
// with a "%" not followed by two hex digits.
func validateURLEncoding(input string) bool {
	inputLen := len(input)
	if inputLen == 0 {
		return false
	}
	i := 0
	for i < inputLen {
		if input[i] != '%' {
			i++
			continue
		}
		if i+2 >= inputLen {
			return true
		}
		if !validHex(input[i+1]) || !validHex(input[i+2]) {
			return true
		}
		i += 3
	}
	return false
}

// ipMatch is @ipMatch: comma-separated addresses and CIDR blocks; entries that
// do not parse are skipped, as in Coraza.
type ipMatch struct {
	subnets []net.IPNet
}

func newIPMatch(data string, _ fs.FS) (Operator, error) {
	var subnets []net.IPNet
	for _, sb := range strings.Split(data, ",") {
		sb = strings.TrimSpace(sb)
		if sb == "" {
			continue
		}
		if strings.Contains(sb, ":") && !strings.Contains(sb, "/") {
			// ipv6
			sb += "/128"
		} else if strings.Contains(sb, ".") && !strings.Contains(sb, "/") {
			// ipv4
			sb += "/32"
		}
		_, subnet, err := net.ParseCIDR(sb)
		if err != nil {
			continue
		}
		subnets = append(subnets, *subnet)
	}
	return &ipMatch{subnets: subnets}, nil
}

// Match implements Operator.
func (o *ipMatch) Match(value string) bool {
	ip := net.ParseIP(value)
	for _, subnet := range o.subnets {
		if subnet.Contains(ip) {
			return true
		}
	}
	return false
}
