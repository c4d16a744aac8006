// Package bodyproc holds Coraza v3.8.1's JSON and URL-encoded request body
// processors (see NOTICE), registered over Coraza's own by Register. They
// fill the same variables with the same values and report the same errors
// (TestSameAsCoraza, FuzzSameAsCoraza compare them with Coraza's
// processors through real transactions), with one deliberate difference:
// the URL-encoded processor keeps every pair, where Coraza's let a name
// that differs only in case replace another's values ("Q=<script>…&q=x"
// went uninspected 176 times in 200; TestCaseFoldedNamesKept). They read
// the body without the 32 KiB buffer io.Copy allocated per body (a third of
// the bytes the proxy allocated per request of the wrk mix). Coraza's
// cookie parser is here too (cookies.go), for agent/waf's direct path.
package bodyproc

import (
	"io"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// CorazaVersion is the Coraza release the processors were copied from;
// agent/waf/internal/ruleops's version test pins go.mod to the same one.
const CorazaVersion = "v3.8.1"

// Register replaces Coraza's "json" and "urlencoded" body processors by
// these copies, for every WAF of the process.
func Register() {
	plugins.RegisterBodyProcessor("json", func() plugintypes.BodyProcessor { return &jsonBodyProcessor{} })
	plugins.RegisterBodyProcessor("urlencoded", func() plugintypes.BodyProcessor { return &urlencodedBodyProcessor{} })
}

// Processor returns the processor Register installs under name ("json",
// "urlencoded"), or nil.
func Processor(name string) plugintypes.BodyProcessor {
	switch name {
	case "json":
		return &jsonBodyProcessor{}
	case "urlencoded":
		return &urlencodedBodyProcessor{}
	}
	return nil
}

// bufs are the read buffers of readAll.
var bufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// StringBody is a request body already held in a string: the processors
// take what is left of it without copying it again.
type StringBody struct {
	strings.Reader
	s string
}

// NewStringBody returns a reader over s.
func NewStringBody(s string) *StringBody {
	b := &StringBody{s: s}
	b.Reset(s)
	return b
}

// readAll reads r into a string as io.Copy into a strings.Builder does
// (same bytes, same error), with a pooled buffer; a StringBody's rest is
// returned without a copy.
func readAll(r io.Reader) (string, error) {
	if sb, ok := r.(*StringBody); ok {
		rest := sb.s[len(sb.s)-sb.Len():]
		_, err := sb.Seek(0, io.SeekEnd)
		return rest, err
	}
	if sr, ok := r.(*strings.Reader); ok {
		var s strings.Builder
		_, err := sr.WriteTo(&s)
		return s.String(), err
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	var s strings.Builder
	_, err := io.CopyBuffer(struct{ io.Writer }{&s}, struct{ io.Reader }{r}, *bp)
	return s.String(), err
}

// singleSetter is collections.Single's Set, for the ARGS limit flag.
type singleSetter interface{ Set(string) }
