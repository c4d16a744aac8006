package waf

import (
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/taskguard/taskguard/agent/waf/internal/gate"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"
)

// rxOperator is the name under which the proxy's regular-expression operator
// is registered. The CRS files the proxy loads are rewritten to use it
// (rulesFS), so plain Coraza in the same process keeps its own @rx.
const rxOperator = "tgrx"

// Memo bounds: values longer than memoMaxValue are never cached; each
// pattern keeps at most memoEntries results and starts over when full.
const (
	memoMaxValue = 256
	memoEntries  = 256
)

// re2MinValue: below this length Go's regexp answers faster than a call
// into RE2.
const re2MinValue = 4

func init() {
	plugins.RegisterOperator(rxOperator, newRx)
}

// rx is @rx with the same results as Coraza's, found faster:
//
//   - results are memoized per pattern for short values: a regular
//     expression's result is a pure function of its input, and HTTP traffic
//     repeats most header values (User-Agent, Accept, Host...) on every request;
//   - the match itself runs on RE2's automaton (go-re2), which does not
//     backtrack through CRS's large alternations as Go's regexp does;
//   - values that are not valid UTF-8 (RE2 stops at invalid bytes, Go's
//     regexp reads them as U+FFFD) and patterns that match raw bytes use
//     Go's regexp and binaryregexp exactly as Coraza does.
type rx struct {
	re2    *re2.Regexp
	std    *regexp.Regexp
	binary *binaryregexp.Regexp

	mu   sync.Mutex
	memo map[string]rxResult
}

// rxResult is one memoized evaluation; captures is nil when it ran without capturing.
type rxResult struct {
	ok       bool
	captures []string
}

func newRx(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	if o.Memoizer == nil {
		return compileRx(o.Arguments)
	}
	// Shared by every WAF of the process: a swapped-in rule reuses the
	// compiled expressions and their memo.
	op, err := o.Memoizer.Do(rxOperator+":"+o.Arguments, func() (any, error) { return compileRx(o.Arguments) })
	if err != nil {
		return nil, err
	}
	return op.(*rx), nil
}

func compileRx(expr string) (*rx, error) {
	pattern := "(?sm)" + expr
	if gate.MatchesBytes(pattern) {
		b, err := binaryregexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("@rx %q: %w", expr, err)
		}
		return &rx{binary: b}, nil
	}
	std, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("@rx %q: %w", expr, err)
	}
	r := &rx{std: std, memo: make(map[string]rxResult, memoEntries)}
	if fast, err := re2.Compile(pattern); err == nil && fast.NumSubexp() == std.NumSubexp() {
		r.re2 = fast
	}
	return r, nil
}

// Evaluate reports whether value matches, capturing groups 0-8 when the rule captures.
func (o *rx) Evaluate(tx plugintypes.TransactionState, value string) bool {
	capturing := tx.Capturing()
	if o.binary != nil {
		m := o.binary.FindStringSubmatchIndex(value)
		return o.finish(tx, value, m, capturing)
	}
	short := len(value) <= memoMaxValue
	if short {
		o.mu.Lock()
		res, hit := o.memo[value]
		o.mu.Unlock()
		if hit && (!capturing || !res.ok || res.captures != nil) {
			if capturing && res.ok {
				for i, c := range res.captures {
					tx.CaptureField(i, c)
				}
			}
			return res.ok
		}
	}
	var ok bool
	var captures []string
	valid := o.re2 != nil && len(value) >= re2MinValue && utf8.ValidString(value)
	if valid {
		ok = o.re2.MatchString(value) // the automaton answers most calls: no match
	} else {
		ok = o.std.MatchString(value)
	}
	if ok && capturing {
		var m []int
		if valid {
			m = o.re2.FindStringSubmatchIndex(value)
		} else {
			m = o.std.FindStringSubmatchIndex(value)
		}
		o.finish(tx, value, m, true)
		captures = gate.Captures(value, m)
	}
	if short {
		o.mu.Lock()
		if len(o.memo) >= memoEntries {
			clear(o.memo)
		}
		o.memo[strings.Clone(value)] = rxResult{ok: ok, captures: captures}
		o.mu.Unlock()
	}
	return ok
}

// finish applies a submatch index to the transaction the way Coraza's @rx does.
func (o *rx) finish(tx plugintypes.TransactionState, value string, m []int, capturing bool) bool {
	if m == nil {
		return false
	}
	if capturing {
		for i, c := range gate.Captures(value, m) {
			tx.CaptureField(i, c)
		}
	}
	return true
}

// rulesFS is the embedded rule set with every "@rx " operator of its .conf
// files renamed to the proxy's own operator.
type rulesFS struct{ inner fs.FS }

var crsFS fs.FS = rulesFS{inner: coreruleset.FS}

func (r rulesFS) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(r.inner, name)
	if err != nil || !strings.HasSuffix(name, ".conf") {
		return b, err
	}
	return bytes.ReplaceAll(b, []byte("@rx "), []byte("@"+rxOperator+" ")), nil
}

func (r rulesFS) Open(name string) (fs.File, error) {
	if !strings.HasSuffix(name, ".conf") {
		return r.inner.Open(name)
	}
	b, err := r.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &memFile{Reader: bytes.NewReader(b), name: name, size: int64(len(b))}, nil
}

func (r rulesFS) Glob(pattern string) ([]string, error) { return fs.Glob(r.inner, pattern) }

func (r rulesFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(r.inner, name) }

// memFile is a rewritten rule file.
type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{f}, nil }
func (f *memFile) Close() error               { return nil }

type memInfo struct{ f *memFile }

func (i memInfo) Name() string       { return i.f.name[strings.LastIndexByte(i.f.name, '/')+1:] }
func (i memInfo) Size() int64        { return i.f.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
