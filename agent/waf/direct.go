package waf

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/taskguard/taskguard/agent/waf/internal/bodyproc"
)

// The direct path: most requests are clean, and for them a Coraza
// transaction costs about a third of inspection (the transaction, its
// collections and maps, the rules before the gate, the setup's TX values,
// the walk over every rule to the gate's end marker, its debug logger).
// cleanDirect builds the collections the gate reads the
// way Coraza v3.8.1 would (ProcessConnection, ProcessURI, AddRequestHeader,
// the rules before the gate, the JSON and URL-encoded body processors) and
// asks the gate about both phases. Only when both are clean is the request
// passed without Coraza; anything else (a rule that may match, a body
// Coraza would parse differently or fail to parse, multipart and XML
// bodies, an argument limit, a variable the direct view does not hold) goes
// to Coraza as before, so every verdict with a match is still Coraza's.
// TestDirectSameCollections compares the direct collections with a real
// transaction's; TestGateSameMatches and FuzzGate compare verdicts.

// directMaxArgs is how many query or body arguments the direct view takes; more
// go to Coraza, which applies SecArgumentsLimit (argumentsLimit).
const directMaxArgs = 512

// errDirectUnsupported is what directTx panics with when the gate asks for
// something the direct view does not build; cleanDirect then answers no.
type errDirectUnsupported struct{ what string }

// dirKV is one value of a keyed collection: its key as given, in lower
// case, and the value.
type dirKV struct{ key, lkey, value string }

// dirMD is a selected value, as Coraza's MatchData.
type dirMD struct {
	v          variables.RuleVariable
	key, value string
}

func (m *dirMD) Variable() variables.RuleVariable { return m.v }
func (m *dirMD) Key() string                      { return m.key }
func (m *dirMD) Value() string                    { return m.value }
func (m *dirMD) Message() string                  { return "" }
func (m *dirMD) Data() string                     { return "" }
func (m *dirMD) ChainLevel() int                  { return 0 }

// mdArena hands out the selected values of one request from chunks reused
// by the next: the gate holds them only until it releases the request.
type mdArena struct {
	md  []dirMD
	ptr []types.MatchData
}

// alloc returns n selected values, from a (nil: from the heap). The slice
// of pointers has no spare capacity: a caller's append copies it.
func (a *mdArena) alloc(n int) ([]dirMD, []types.MatchData) {
	if n == 0 {
		return nil, nil
	}
	if a == nil {
		return make([]dirMD, n), make([]types.MatchData, n)
	}
	if cap(a.md)-len(a.md) < n {
		// A new chunk; values already handed out keep the old one alive.
		a.md = make([]dirMD, 0, max(2*cap(a.md), n, 64))
	}
	if cap(a.ptr)-len(a.ptr) < n {
		a.ptr = make([]types.MatchData, 0, max(2*cap(a.ptr), n, 64))
	}
	l, p := len(a.md), len(a.ptr)
	a.md, a.ptr = a.md[:l+n], a.ptr[:p+n]
	return a.md[l : l+n : l+n], a.ptr[p : p+n : p+n]
}

// reset forgets the values handed out (and the request data they hold).
func (a *mdArena) reset() {
	clear(a.md)
	clear(a.ptr)
	a.md, a.ptr = a.md[:0], a.ptr[:0]
}

// dirSingle is a Coraza Single: one value, empty key.
type dirSingle struct {
	v     variables.RuleVariable
	value string
}

func (s *dirSingle) FindAll() []types.MatchData {
	return []types.MatchData{&dirMD{v: s.v, value: s.value}}
}
func (s *dirSingle) Get() string    { return s.value }
func (s *dirSingle) Name() string   { return s.v.Name() }
func (s *dirSingle) Set(v string)   { s.value = v }
func (s *dirSingle) String() string { return s.v.Name() + ": " + s.value }
func (s *dirSingle) setV(v variables.RuleVariable, value string) {
	s.v, s.value = v, value
}

// dirMap is a case-insensitive Coraza Map (NamedCollection): values in
// the order added, looked up by lower-case key.
type dirMap struct {
	v  variables.RuleVariable
	kv []dirKV
	// a is the request's arena of selected values (nil: the heap).
	a *mdArena
}

func (m *dirMap) Name() string { return m.v.Name() }

func (m *dirMap) Get(key string) []string {
	lk := strings.ToLower(key)
	var out []string
	for _, e := range m.kv {
		if e.lkey == lk {
			out = append(out, e.value)
		}
	}
	return out
}

func (m *dirMap) pick(v variables.RuleVariable, keep func(e *dirKV) bool, names bool) []types.MatchData {
	n := 0
	for i := range m.kv {
		if keep == nil || keep(&m.kv[i]) {
			n++
		}
	}
	buf, out := m.a.alloc(n)
	j := 0
	for i := range m.kv {
		e := &m.kv[i]
		if keep != nil && !keep(e) {
			continue
		}
		buf[j] = dirMD{v: v, key: e.key, value: e.value}
		if names {
			buf[j].value = e.key
		}
		out[j] = &buf[j]
		j++
	}
	return out
}

func (m *dirMap) FindAll() []types.MatchData { return m.pick(m.v, nil, false) }

func (m *dirMap) FindString(key string) []types.MatchData {
	if key == "" {
		return m.FindAll()
	}
	lk := strings.ToLower(key)
	return m.pick(m.v, func(e *dirKV) bool { return e.lkey == lk }, false)
}

func (m *dirMap) FindRegex(rx *regexp.Regexp) []types.MatchData {
	return m.pick(m.v, func(e *dirKV) bool { return rx.MatchString(e.lkey) }, false)
}

func (m *dirMap) Add(key, value string) { m.add(key, value) }

// add is Add, and returns the key in lower case.
func (m *dirMap) add(key, value string) string {
	lk := lowerKey(key)
	m.kv = append(m.kv, dirKV{key: key, lkey: lk, value: value})
	return lk
}

// commonLower holds the lower case of the header names browsers and
// clients send (net/http canonicalizes them): strings.ToLower would
// allocate each on every request.
var commonLower = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Dnt", "Host", "If-Modified-Since",
		"If-None-Match", "Origin", "Pragma", "Priority", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
		"Te", "Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via",
		"X-Amzn-Trace-Id", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto",
		"X-Real-Ip", "X-Request-Id", "X-Requested-With",
	} {
		m[h] = strings.ToLower(h)
	}
	return m
}()

// lowerKey is strings.ToLower(k), without allocating for keys already in
// lower case and common header names.
func lowerKey(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			if l, ok := commonLower[k]; ok {
				return l
			}
			return strings.ToLower(k)
		}
	}
	return k
}

// Set replaces the values of key (any case) as Coraza's Map.Set does: they
// all take key as given.
func (m *dirMap) Set(key string, values []string) {
	m.Remove(key)
	lk := strings.ToLower(key)
	for _, v := range values {
		m.kv = append(m.kv, dirKV{key: key, lkey: lk, value: v})
	}
}

func (m *dirMap) SetIndex(key string, index int, value string) {
	panic(errDirectUnsupported{"SetIndex on " + m.v.Name()})
}

func (m *dirMap) Remove(key string) {
	lk := strings.ToLower(key)
	kept := m.kv[:0]
	for _, e := range m.kv {
		if e.lkey != lk {
			kept = append(kept, e)
		}
	}
	clear(m.kv[len(kept):])
	m.kv = kept
}

func (m *dirMap) reset(v variables.RuleVariable) {
	clear(m.kv)
	m.v, m.kv = v, m.kv[:0]
}

// dirNames is the names of a dirMap, as Coraza's NamedCollectionNames:
// FindString compares the key as given with the lower-case keys, Get
// returns the values.
type dirNames struct {
	v variables.RuleVariable
	m *dirMap
}

func (n *dirNames) Name() string               { return n.v.Name() }
func (n *dirNames) Get(key string) []string    { return n.m.Get(key) }
func (n *dirNames) FindAll() []types.MatchData { return n.m.pick(n.v, nil, true) }
func (n *dirNames) FindString(key string) []types.MatchData {
	return n.m.pick(n.v, func(e *dirKV) bool { return e.lkey == key }, true)
}
func (n *dirNames) FindRegex(rx *regexp.Regexp) []types.MatchData {
	return n.m.pick(n.v, func(e *dirKV) bool { return rx.MatchString(e.lkey) }, true)
}

// dirConcat is Coraza's ConcatKeyed: the collections one after the other,
// every value under the concatenation's variable.
type dirConcat struct {
	v    variables.RuleVariable
	cols [2]collection.Keyed
}

func (c *dirConcat) Name() string { return c.v.Name() }

func (c *dirConcat) Get(key string) []string {
	return append(c.cols[0].Get(key), c.cols[1].Get(key)...)
}

func (c *dirConcat) join(a, b []types.MatchData) []types.MatchData {
	out := append(a[:len(a):len(a)], b...)
	for _, m := range out {
		m.(*dirMD).v = c.v
	}
	return out
}

func (c *dirConcat) FindAll() []types.MatchData {
	return c.join(c.cols[0].FindAll(), c.cols[1].FindAll())
}
func (c *dirConcat) FindString(key string) []types.MatchData {
	return c.join(c.cols[0].FindString(key), c.cols[1].FindString(key))
}
func (c *dirConcat) FindRegex(rx *regexp.Regexp) []types.MatchData {
	return c.join(c.cols[0].FindRegex(rx), c.cols[1].FindRegex(rx))
}

// dirSize is ARGS_COMBINED_SIZE: the length of every key and value of
// the query and body arguments.
type dirSize struct{ t *directTx }

func (s *dirSize) Name() string { return variables.ArgsCombinedSize.Name() }
func (s *dirSize) FindAll() []types.MatchData {
	n := 0
	for _, m := range []*dirMap{&s.t.argsGet, &s.t.argsPost} {
		for _, e := range m.kv {
			n += len(e.key) + len(e.value)
		}
	}
	return []types.MatchData{&dirMD{v: variables.ArgsCombinedSize, value: strconv.Itoa(n)}}
}

// FindString and FindRegex select every value, as Coraza's SizeCollection.
func (s *dirSize) FindString(string) []types.MatchData        { return s.FindAll() }
func (s *dirSize) FindRegex(*regexp.Regexp) []types.MatchData { return s.FindAll() }

// dirTXCol is TX: the values a transaction holds when the gate runs (the
// "0" to "10" Coraza sets, the setup's), the engine's and read-only, and
// those the request sets (the JSON body processor's).
type dirTXCol struct {
	base *txBase
	own  dirMap
}

// txBase is the TX values every transaction of an engine starts with,
// with their selections by lower-case key built once (read-only, shared
// by the requests).
type txBase struct {
	m     dirMap
	byKey map[string][]types.MatchData
	all   []types.MatchData
}

func newTXBase(m dirMap) *txBase {
	b := &txBase{m: m, byKey: map[string][]types.MatchData{}}
	b.all = m.FindAll()
	for _, md := range b.all {
		lk := strings.ToLower(md.Key())
		b.byKey[lk] = append(b.byKey[lk], md)
	}
	return b
}

func (c *dirTXCol) Name() string { return "TX" }
func (c *dirTXCol) Get(key string) []string {
	if v := c.own.Get(key); v != nil {
		return v
	}
	return c.base.m.Get(key)
}
func (c *dirTXCol) shadowed(e *dirKV) bool {
	for _, o := range c.own.kv {
		if o.lkey == e.lkey {
			return true
		}
	}
	return false
}
func (c *dirTXCol) FindAll() []types.MatchData {
	if len(c.own.kv) == 0 {
		return c.base.all[:len(c.base.all):len(c.base.all)]
	}
	return append(c.base.m.pick(variables.TX, func(e *dirKV) bool { return !c.shadowed(e) }, false), c.own.FindAll()...)
}
func (c *dirTXCol) FindString(key string) []types.MatchData {
	if key == "" {
		return c.FindAll()
	}
	if len(c.own.kv) > 0 {
		if v := c.own.FindString(key); v != nil {
			return v
		}
	}
	v := c.base.byKey[lowerKey(key)]
	return v[:len(v):len(v)]
}
func (c *dirTXCol) FindRegex(rx *regexp.Regexp) []types.MatchData {
	return append(c.base.m.pick(variables.TX, func(e *dirKV) bool { return !c.shadowed(e) && rx.MatchString(e.lkey) }, false), c.own.FindRegex(rx)...)
}
func (c *dirTXCol) Add(key, value string) { panic(errDirectUnsupported{"TX Add"}) }
func (c *dirTXCol) Set(key string, values []string) {
	c.own.Set(key, values)
}
func (c *dirTXCol) SetIndex(string, int, string) { panic(errDirectUnsupported{"TX SetIndex"}) }
func (c *dirTXCol) Remove(string)                { panic(errDirectUnsupported{"TX Remove"}) }

// dirSingles are the single-valued variables the direct view holds.
var dirSingles = []variables.RuleVariable{
	variables.RequestMethod, variables.RequestProtocol, variables.RequestURIRaw, variables.RequestLine,
	variables.RequestURI, variables.RequestBasename, variables.RequestFilename, variables.QueryString,
	variables.URIParseError, variables.RemoteAddr, variables.RemotePort, variables.ServerAddr,
	variables.ServerPort, variables.ServerName, variables.ReqbodyProcessor, variables.RequestBody,
	variables.RequestBodyLength, variables.ReqbodyError, variables.ReqbodyProcessorError,
	variables.ArgumentsLimitReached, variables.UrlencodedError, variables.FilesCombinedSize,
	variables.MultipartStrictError, variables.MultipartDataAfter, variables.MultipartDuplicatePartHeader,
	variables.MultipartInvalidQuoting, variables.InboundDataError, variables.FullRequestLength,
}

// dirEmpty are the keyed variables that stay empty without a multipart or
// XML body.
var dirEmpty = [...]variables.RuleVariable{
	variables.Files, variables.FilesNames, variables.FilesSizes, variables.FilesTmpNames,
	variables.FilesTmpContent, variables.MultipartPartHeaders, variables.MultipartFilename,
	variables.MultipartName, variables.RequestXML, variables.XML, variables.ArgsPath,
}

// jsonDepthLimit is SecRequestBodyJsonDepthLimit of @coraza.conf-recommended.
const jsonDepthLimit = 1024

// directTx is a request's collections as a Coraza transaction would hold
// them after its request phases, for the gate. It implements only what
// the gate and the body processors call; anything else panics (embedded
// nil interfaces, errDirectUnsupported), and cleanDirect answers no.
type directTx struct {
	plugintypes.TransactionState
	plugintypes.TransactionVariables

	single            [32]dirSingle
	headers, cookies  dirMap
	argsGet, argsPost dirMap
	// empty holds dirEmpty's variables, each in its own empty map.
	empty           [len(dirEmpty)]dirMap
	headerNames     dirNames
	cookieNames     dirNames
	argsGetNames    dirNames
	argsPostNames   dirNames
	args, argsNames dirConcat
	size            dirSize
	tx              dirTXCol
	arena           mdArena
	// forceBody is Coraza's ForceRequestBodyVariable (rule 901340).
	forceBody bool
}

// dirSingleAt maps a single-valued variable to its index in
// directTx.single, plus one (0: not a single-valued variable of the view).
var dirSingleAt = func() (at [256]uint8) {
	if len(dirSingles) > len(directTx{}.single) {
		panic("waf: directTx.single is too small")
	}
	for i, v := range dirSingles {
		at[v] = uint8(i + 1)
	}
	return at
}()

var directPool = sync.Pool{New: func() any {
	t := &directTx{}
	t.headerNames = dirNames{variables.RequestHeadersNames, &t.headers}
	t.cookieNames = dirNames{variables.RequestCookiesNames, &t.cookies}
	t.argsGetNames = dirNames{variables.ArgsGetNames, &t.argsGet}
	t.argsPostNames = dirNames{variables.ArgsPostNames, &t.argsPost}
	t.args = dirConcat{variables.Args, [2]collection.Keyed{&t.argsGet, &t.argsPost}}
	t.argsNames = dirConcat{variables.ArgsNames, [2]collection.Keyed{&t.argsGetNames, &t.argsPostNames}}
	t.size = dirSize{t}
	for _, m := range []*dirMap{&t.headers, &t.cookies, &t.argsGet, &t.argsPost, &t.tx.own} {
		m.a = &t.arena
	}
	for i, v := range dirEmpty {
		if v == variables.XML {
			v = variables.RequestXML // Coraza's XML is REQUEST_XML
		}
		t.empty[i] = dirMap{v: v, a: &t.arena}
	}
	return t
}}

func (t *directTx) reset(base *txBase) {
	for i, v := range dirSingles {
		t.single[i].setV(v, "")
	}
	// The values a new transaction starts with (Coraza's newTransaction).
	for _, v := range []variables.RuleVariable{
		variables.FilesCombinedSize, variables.UrlencodedError, variables.URIParseError,
		variables.ArgumentsLimitReached, variables.FullRequestLength, variables.MultipartDataAfter,
		variables.MultipartDuplicatePartHeader, variables.MultipartInvalidQuoting, variables.ReqbodyError,
		variables.ReqbodyProcessorError, variables.RequestBodyLength,
	} {
		t.set(v, "0")
	}
	t.headers.reset(variables.RequestHeaders)
	t.cookies.reset(variables.RequestCookies)
	t.argsGet.reset(variables.ArgsGet)
	t.argsPost.reset(variables.ArgsPost)
	for i := range t.empty {
		t.empty[i].reset(t.empty[i].v) // nothing writes them; if it did, not into the next request
	}
	t.tx.base = base
	t.tx.own.reset(variables.TX)
	t.arena.reset()
	t.forceBody = false
}

func (t *directTx) set(v variables.RuleVariable, value string) {
	t.single[dirSingleAt[v]-1].value = value
}
func (t *directTx) get(v variables.RuleVariable) string { return t.single[dirSingleAt[v]-1].value }

// Collection is the variable's collection; a variable the direct view does not
// hold panics.
func (t *directTx) Collection(v variables.RuleVariable) collection.Collection {
	if i := dirSingleAt[v]; i > 0 {
		return &t.single[i-1]
	}
	switch v {
	case variables.RequestHeaders:
		return &t.headers
	case variables.RequestHeadersNames:
		return &t.headerNames
	case variables.RequestCookies:
		return &t.cookies
	case variables.RequestCookiesNames:
		return &t.cookieNames
	case variables.ArgsGet:
		return &t.argsGet
	case variables.ArgsGetNames:
		return &t.argsGetNames
	case variables.ArgsPost:
		return &t.argsPost
	case variables.ArgsPostNames:
		return &t.argsPostNames
	case variables.Args:
		return &t.args
	case variables.ArgsNames:
		return &t.argsNames
	case variables.ArgsCombinedSize:
		return &t.size
	case variables.TX:
		return &t.tx
	}
	for i, e := range dirEmpty {
		if e == v {
			return &t.empty[i] // read only: stays empty
		}
	}
	panic(errDirectUnsupported{"variable " + v.Name()})
}

// RemoveRuleTargetByID is a quiet rule's ctl action (the gate's
// targetRemover). The gate applies one only when it lets Coraza evaluate
// rules after it; cleanDirect then answers no and Coraza evaluates the
// request from the start, so the direct view ignores it.
func (t *directTx) RemoveRuleTargetByID(int, variables.RuleVariable, string, *regexp.Regexp) {}

// Variables is the transaction's variables as the body processors and the
// gate use them.
func (t *directTx) Variables() plugintypes.TransactionVariables { return t }

// TX and the body processors' variables.
func (t *directTx) TX() collection.Map       { return &t.tx }
func (t *directTx) ArgsPost() collection.Map { return &t.argsPost }
func (t *directTx) RequestBody() collection.Single {
	return &t.single[dirSingleAt[variables.RequestBody]-1]
}
func (t *directTx) RequestBodyLength() collection.Single {
	return &t.single[dirSingleAt[variables.RequestBodyLength]-1]
}
func (t *directTx) ArgumentsLimitReached() collection.Single {
	return &t.single[dirSingleAt[variables.ArgumentsLimitReached]-1]
}

// directTXBase is the TX collection a transaction of this configuration
// holds when the gate runs: Coraza's "0" to "10", then the setup's values.
func directTXBase(config string) *txBase {
	m := dirMap{v: variables.TX}
	for i := 0; i <= 10; i++ {
		m.Set(strconv.Itoa(i), []string{""})
	}
	for _, line := range strings.Split(config, "\n") {
		if sv, ok := strings.CutPrefix(line, "# tgsetup: "); ok {
			k, v, _ := strings.Cut(sv, "=")
			m.Set(strings.TrimPrefix(strings.ToLower(k), "tx."), []string{v})
		}
	}
	return newTXBase(m)
}

var (
	// 200000, 200001 and 200006 of @coraza.conf-recommended, on the
	// lower-cased Content-Type.
	dirXMLType  = regexp.MustCompile(`^(?:application(?:/soap\+|/)|text/)xml`)
	dirJSONType = regexp.MustCompile(`^application/json`)
	dirJSONPlus = regexp.MustCompile(`^application/[a-z0-9.-]+[+]json`)
)

// directPreGate lists the rules Coraza evaluates before the gate, which
// buildDirect models; TestDirectPreGateRules checks the configuration has no
// other.
var directPreGate = []int{200000, 200001, 200002, 200003, 200006, 900991, 901340, 905100, 905110}

// buildDirect fills t from the request as fillRequest, Coraza's
// ProcessConnection, ProcessURI, AddRequestHeader and the rules before the
// gate would. It reports false when the direct view cannot stand for Coraza's
// (the request goes to Coraza).
func buildDirect(t *directTx, r *http.Request) bool {
	client, cport := r.RemoteAddr, 0
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i != -1 {
		client = strings.Trim(r.RemoteAddr[:i], "[]")
		cport, _ = strconv.Atoi(r.RemoteAddr[i+1:])
	}
	t.set(variables.RemoteAddr, client)
	t.set(variables.RemotePort, strconv.Itoa(cport))
	t.set(variables.ServerAddr, "")
	t.set(variables.ServerPort, "0")

	// ProcessURI.
	uri, method, proto := r.URL.RequestURI(), r.Method, r.Proto
	t.set(variables.RequestMethod, method)
	t.set(variables.RequestProtocol, proto)
	t.set(variables.RequestURIRaw, uri)
	line := method + " " + uri + " " + proto
	t.set(variables.RequestLine, line)
	if in := strings.Index(uri, "#"); in != -1 {
		uri = uri[:in]
	}
	var path, query string
	if parsed, err := url.ParseRequestURI(uri); err != nil {
		// Coraza's fallback for what url.ParseRequestURI rejects: rare
		// enough to leave to Coraza.
		return false
	} else {
		query = parsed.RawQuery
		if !directArgs(&t.argsGet, query) {
			return false
		}
		t.set(variables.RequestURI, parsed.String())
		path = parsed.Path
	}
	if offset := strings.LastIndexAny(path, "/\\"); offset != -1 && len(path) > offset+1 {
		t.set(variables.RequestBasename, path[offset+1:])
	} else {
		t.set(variables.RequestBasename, path)
	}
	t.set(variables.RequestFilename, path)
	t.set(variables.QueryString, query)

	// AddRequestHeader, in fillRequest's order.
	for k, vs := range r.Header {
		for _, v := range vs {
			if !t.addHeader(k, v) {
				return false
			}
		}
	}
	if r.Host != "" {
		if !t.addHeader("Host", r.Host) {
			return false
		}
		t.set(variables.ServerName, r.Host)
	}
	for _, te := range r.TransferEncoding {
		if !t.addHeader("Transfer-Encoding", te) {
			return false
		}
	}

	// The rules before the gate (directPreGate). 200000/200001/200006 select
	// the body processor from every Content-Type value; 900991 is the
	// setup (directTXBase); 901340 forces the body variable when no known
	// processor was selected; 905100 and 905110 remove CRS for Apache's
	// own requests when they match: left to Coraza.
	ctypes := t.headers.Get("content-type")
	if len(ctypes) > 1 {
		return false
	}
	for _, ct := range ctypes {
		lct := strings.ToLower(ct)
		switch {
		case dirXMLType.MatchString(lct):
			return false
		case dirJSONType.MatchString(lct), dirJSONPlus.MatchString(lct):
			t.set(variables.ReqbodyProcessor, "JSON")
		}
	}
	switch t.get(variables.ReqbodyProcessor) {
	case "URLENCODED", "JSON":
	case "MULTIPART", "XML":
		return false
	default:
		t.forceBody = true
	}
	if line == "GET /" {
		return false
	}
	for _, ua := range t.headers.Get("user-agent") {
		if strings.HasSuffix(ua, "(internal dummy connection)") {
			return false
		}
	}
	return true
}

// directArgs adds the arguments of a query as Coraza's ExtractGetArguments.
func directArgs(m *dirMap, query string) bool {
	pairs, truncated := bodyproc.ParseQueryOrdered(query, '&', directMaxArgs)
	if truncated {
		return false
	}
	for _, kv := range pairs {
		m.Add(kv.Key, kv.Value)
	}
	return true
}

// addHeader is Coraza's AddRequestHeader.
func (t *directTx) addHeader(key, value string) bool {
	if key == "" {
		return true
	}
	switch t.headers.add(key, value) {
	case "content-type":
		if len(t.headers.Get("content-type")) == 1 {
			val := strings.TrimSpace(strings.ToLower(value))
			if strings.HasPrefix(val, "application/x-www-form-urlencoded") {
				t.set(variables.ReqbodyProcessor, "URLENCODED")
			} else if strings.HasPrefix(val, "multipart/form-data") {
				t.set(variables.ReqbodyProcessor, "MULTIPART")
			}
		}
	case "cookie":
		// Coraza adds them grouped by name in its map's order: the same
		// values (collections have no order).
		bodyproc.EachCookie(value, t.cookies.Add)
	}
	return true
}

// directBody processes the body as Coraza's WriteRequestBody and
// ProcessRequestBody would, with the same body processors. It reports
// false for what it leaves to Coraza (a parse error, the argument limit).
func (e *engine) directBody(t *directTx, body []byte) bool {
	if len(body) == 0 {
		return true
	}
	rbp := t.get(variables.ReqbodyProcessor)
	if t.forceBody {
		if rbp == "" {
			rbp = "URLENCODED"
		}
		t.set(variables.ReqbodyProcessor, rbp)
	}
	var name string
	switch rbp {
	case "URLENCODED":
		name = "urlencoded"
	case "JSON":
		name = "json"
	default:
		return false
	}
	bp := bodyproc.Processor(name)
	mime := ""
	if m := t.headers.Get("content-type"); len(m) > 0 {
		mime = m[0]
	}
	if err := bp.ProcessRequest(bodyproc.NewStringBody(string(body)), t, plugintypes.BodyProcessorOptions{
		Mime:                      mime,
		RequestBodyRecursionLimit: jsonDepthLimit,
		ArgumentLimit:             argumentsLimit,
	}); err != nil {
		return false
	}
	return t.get(variables.ArgumentsLimitReached) == "0" && len(t.argsPost.kv) <= directMaxArgs
}

// cleanDirect reports whether the gate proves both request phases clean on
// the direct view of r and body: the request then passes without a Coraza
// transaction.
func (e *engine) cleanDirect(r *http.Request, body []byte) (clean bool) {
	if e.gate == nil || e.txBase == nil {
		return false
	}
	t := directPool.Get().(*directTx)
	t.reset(e.txBase)
	req := e.gate.NewRequest()
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(errDirectUnsupported); !ok {
				gatePanics.Add(1)
			}
			clean = false
		}
		req.Release()
		t.reset(nil)
		directPool.Put(t)
	}()
	if !buildDirect(t, r) || !req.Clean(t, 1) {
		return false
	}
	return e.directBody(t, body) && req.Clean(t, 2)
}
