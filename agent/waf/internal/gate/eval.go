package gate

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// maxDynamic bounds the cache of operators built from expanded macros.
const maxDynamic = 1024

// Memo bounds (see memo): values up to memoMaxValue bytes are remembered
// across requests, in generations of at most scanEntries per RE2 set,
// headEntries in the head memo (both phases, every target's values) and
// ruleEntries per rule. With the head memo, 4 sets and 25 remembered rules,
// hostile traffic that filled every memo with distinct 256-byte values
// would hold about 20 MiB; agent/waf's TestMemoWorstCase (new long values
// in the path, parameters, headers and cookies of every request) measures
// it; ordinary traffic, a few hundred KiB.
const (
	memoMaxValue = 256
	headEntries  = 16384
	ruleEntries  = 256
	scanEntries  = 4096
	lowerEntries = 1024
	lowerMaxKey  = 64
)

// Clean reports whether no rule the gate covers in phase can match the
// transaction's current state: Coraza may then skip them. Anything the
// gate cannot decide exactly (an evaluation error, a chain level with side
// effects that matched) answers false.
func (p *Program) Clean(tx plugintypes.TransactionState, phase int) bool {
	r := p.NewRequest()
	defer r.Release()
	clean := r.Clean(tx, phase)
	r.flush(tx)
	return clean
}

// Request is the gate's state for one transaction across its phases: the
// values that cannot change between phase 1 and phase 2 (headers, cookies,
// URI, query arguments) are selected, transformed and scanned once.
type Request struct {
	sc *scratch
	// pending are quiet rules of a clean phase 1 whose target removals
	// only matter if Coraza evaluates rules later: applied when phase 2 is
	// not clean, dropped when it is (no rule runs after it in the proxy).
	pending []*rule
}

// flush applies the pending target removals.
func (r *Request) flush(tx plugintypes.TransactionState) {
	if len(r.pending) == 0 {
		return
	}
	if rm, ok := tx.(targetRemover); ok {
		for _, q := range r.pending {
			q.applyCtls(rm)
		}
	}
	r.pending = nil
}

// NewRequest starts the gate's state for one transaction; Release ends it.
func (p *Program) NewRequest() *Request {
	sc := p.scratch.Get().(*scratch)
	sc.req.sc = sc
	return &sc.req
}

// Release returns the request's state for reuse; r must not be used after.
func (r *Request) Release() {
	if sc := r.sc; sc != nil {
		r.sc, r.pending = nil, r.pending[:0]
		sc.release()
	}
}

// Clean is Program.Clean for the request's transaction. When it answers
// false it may still mark clean rule files for Coraza to skip alone
// (Options.FileFlags); a clean phase 1's target removals wait for phase 2.
func (req *Request) Clean(tx plugintypes.TransactionState, phase int) bool {
	if phase < 1 || phase > 2 || req.sc == nil {
		return false
	}
	sc, p := req.sc, req.sc.p
	sc.startPhase(tx)
	sc.headHits(phase)
	var effects []*rule
	var dirty []bool // files with a rule that may match
	for _, r := range p.phases[phase] {
		if !sc.ruleMayMatch(r) {
			continue
		}
		if r.quiet {
			if len(r.ctls) > 0 {
				effects = append(effects, r)
			}
			continue
		}
		if r.file < 0 {
			return false
		}
		if dirty == nil {
			dirty = make([]bool, len(p.files))
		}
		dirty[r.file] = true
	}
	rm, ok := tx.(targetRemover)
	if len(effects) > 0 && !ok {
		return false
	}
	if dirty == nil {
		if phase == 1 {
			req.pending = append(req.pending, effects...)
		} else {
			req.pending = nil
		}
		return true
	}
	req.flush(tx)
	// Some rules may match: Coraza evaluates their files, and skips alone
	// every file that is clean and whose rules read nothing the files it
	// evaluates may write.
	skip := make([]bool, len(p.files))
	col := tx.Variables().TX()
	suffix := "_p" + strconv.Itoa(phase)
	for fi, f := range p.files {
		if dirty[fi] || f.global {
			continue
		}
		skip[fi] = true
		for _, e := range f.after {
			skip[fi] = skip[fi] && skip[e]
		}
		if skip[fi] {
			col.Set(f.flag+suffix, []string{"1"})
		}
	}
	for _, r := range effects {
		if r.file >= 0 && skip[r.file] {
			r.applyCtls(rm)
		}
	}
	return false
}

// applyCtls applies a quiet rule's target removals as Coraza's ctl action.
func (r *rule) applyCtls(rm targetRemover) {
	for _, c := range r.ctls {
		for _, id := range c.ids {
			rm.RemoveRuleTargetByID(id, c.v, c.key, c.keyRx)
		}
	}
}

// targetRemover is the method Coraza's transaction offers for
// ctl:ruleRemoveTarget*.
type targetRemover interface {
	RemoveRuleTargetByID(id int, variable variables.RuleVariable, key string, keyRx *regexp.Regexp)
}

// scratch is the request-scoped state of one evaluation.
type scratch struct {
	p      *Program
	tx     plugintypes.TransactionState
	vals   [][]types.MatchData
	ents   [][]entry
	trbuf  []trValue
	have   []bool
	built  []bool
	tmemo  map[tkey]string
	scans  map[*patternSet]map[string][]uint64 // scans of long values
	local  map[string][]string                 // TX writes of the current rule, lower-case keys
	del    map[string]bool
	mvars  []md     // MATCHED_VARS of the current rule
	hits   []uint64 // static heads that some value matches, by level.hb
	req    Request  // the Request this scratch serves
	hdSnap snapshot // REQUEST_HEADERS, per request
	// bitsets are the scans entries refer to (trValue.scans).
	bitsets [][]uint64
	keybuf  []byte
	ovl     overlayTx
	// all holds, for the phase, each collection's FindAll (targets with
	// different keys and exceptions select from the same values).
	all    map[variables.RuleVariable][]types.MatchData
	txcol  txCollection
	mcols  [4]matchedCollection
	strbuf []string
	// counts are the values of &TARGET selections and single-valued
	// collections, countVals them as selections (arenas for the request,
	// reset by release).
	counts    []md
	countVals []types.MatchData
	// The request's values and what headHits knows of each (valueState),
	// kept across its phases while the head memo's generation is memoGen.
	vidx    map[string]int32
	vstates []valueState
	vwords  []uint64
	memoGen uint64
}

type tkey struct {
	chain int
	s     string
}

func newScratch(p *Program) *scratch {
	sc := &scratch{
		p:     p,
		vals:  make([][]types.MatchData, len(p.targets)),
		have:  make([]bool, len(p.targets)),
		built: make([]bool, len(p.targets)),
		ents:  make([][]entry, len(p.targets)),
		tmemo: map[tkey]string{},
		scans: map[*patternSet]map[string][]uint64{},
		local: map[string][]string{},
		del:   map[string]bool{},
		all:   map[variables.RuleVariable][]types.MatchData{},
		vidx:  map[string]int32{},
	}
	sc.ovl.sc = sc
	sc.txcol.sc = sc
	for i, v := range []variables.RuleVariable{variables.MatchedVar, variables.MatchedVars, variables.MatchedVarName, variables.MatchedVarsNames} {
		sc.mcols[i] = matchedCollection{sc: sc, v: v}
	}
	return sc
}

func (sc *scratch) release() {
	clear(sc.vals)
	clear(sc.have)
	clear(sc.built)
	for i := range sc.ents {
		sc.ents[i] = sc.ents[i][:0]
	}
	sc.trbuf = sc.trbuf[:0]
	clear(sc.tmemo)
	clear(sc.scans)
	clear(sc.all)
	clear(sc.bitsets)
	sc.bitsets = sc.bitsets[:0]
	sc.dropStates()
	clear(sc.counts)
	clear(sc.countVals)
	sc.counts, sc.countVals = sc.counts[:0], sc.countVals[:0]
	sc.hdSnap = snapshot{all: sc.hdSnap.all[:0], lower: sc.hdSnap.lower[:0]}
	sc.resetRule()
	sc.tx = nil
	sc.p.scratch.Put(sc)
}

// startPhase forgets the values that may differ from the last phase.
func (sc *scratch) startPhase(tx plugintypes.TransactionState) {
	sc.tx = tx
	clear(sc.all)
	for slot, t := range sc.p.targets {
		if !t.invariant {
			sc.have[slot], sc.built[slot] = false, false
			sc.vals[slot] = nil
			sc.ents[slot] = sc.ents[slot][:0]
		}
	}
	sc.resetRule()
}

func (sc *scratch) resetRule() {
	clear(sc.local)
	clear(sc.del)
	sc.mvars = sc.mvars[:0]
}

// ruleMayMatch evaluates one rule's chain as Coraza would.
func (sc *scratch) ruleMayMatch(r *rule) bool {
	if h := r.levels[0]; h.hb >= 0 && sc.hits[h.hb/64]&(1<<(h.hb%64)) == 0 {
		return false // a static head that no value matches
	}
	if r.levels[0].hb >= 0 && len(r.levels) == 1 {
		return true // the head is the rule
	}
	if r.pure || r.semi {
		return sc.pureMatches(r)
	}
	return sc.chainMatches(r)
}

// chainMatches evaluates a rule's chain as Coraza would.
func (sc *scratch) chainMatches(r *rule) bool {
	defer sc.resetRule()
	for i, l := range r.levels {
		if !sc.levelMatches(l) {
			if i == 0 {
				return false
			}
			for _, prev := range r.levels[:i] {
				if prev.sideEffects {
					return true
				}
			}
			return false
		}
	}
	return true
}

// levelMatches evaluates one SecRule: any value of any target whose
// transformed value the operator accepts (negation applied).
func (sc *scratch) levelMatches(l *level) bool {
	sc.ovl.TransactionState = sc.tx
	matched := false
	for _, t := range l.targets {
		if t.slot >= 0 {
			ents := sc.entries(t)
			for i := range ents {
				e := &ents[i]
				if l.multiMatch {
					for _, s := range sc.multi(l.chain, e.md.Value()) {
						if sc.evaluate(l, e.md, s, nil) {
							matched = true
						}
					}
					continue
				}
				tr := sc.transformEntry(e, l.chain)
				if sc.evaluate(l, e.md, tr.s, tr) {
					matched = true
				}
			}
			continue
		}
		for _, v := range sc.values(t) {
			if l.multiMatch {
				for _, s := range sc.multi(l.chain, v.Value()) {
					if sc.evaluate(l, v, s, nil) {
						matched = true
					}
				}
				continue
			}
			if sc.evaluate(l, v, sc.transform(l.chain, v), nil) {
				matched = true
			}
		}
	}
	return matched
}

// pureMatches answers a pure rule from its memo, keyed by all the values
// it reads, or by evaluating it.
func (sc *scratch) pureMatches(r *rule) bool {
	key := sc.keybuf[:0]
	for _, k := range r.realKeys {
		for _, v := range sc.txcol.Get(k) {
			key = strconv.AppendInt(key, int64(len(v)), 10)
			key = append(key, ':')
			key = append(key, v...)
		}
		key = append(key, '|')
	}
	for _, l := range r.levels {
		for _, t := range l.targets {
			if t.slot < 0 {
				continue // TX (own writes or realKeys) and MATCHED_* (derived)
			}
			for _, e := range sc.entries(t) {
				v := e.md.Value()
				key = strconv.AppendInt(key, int64(len(v)), 10)
				key = append(key, ':')
				key = append(key, v...)
			}
			key = append(key, '|')
		}
	}
	sc.keybuf = key
	remember := len(key) <= 2*memoMaxValue
	if remember {
		if res, ok := r.memo.get(string(key)); ok {
			return res
		}
	}
	res := sc.chainMatches(r)
	if remember {
		r.memo.put(string(key), res)
	}
	return res
}

// headHits finds the static heads of phase that match some value: per
// target and value, from the memo or by evaluating the heads that read the
// target.
func (sc *scratch) headHits(phase int) {
	p := sc.p
	if n := (p.nHeads + 63) / 64; len(sc.hits) != n {
		sc.hits = make([]uint64, n)
	}
	clear(sc.hits)
	if len(p.macroHeads[phase]) > 0 {
		sc.ovl.TransactionState = sc.tx
		var b strings.Builder
		for _, h := range p.macroHeads[phase] {
			b.WriteString(h.argMacro.Expand(&sc.ovl))
			b.WriteByte(0)
		}
		epoch := b.String()
		if cur := p.epochs[phase].Load(); cur == nil || *cur != epoch {
			p.epochMu.Lock()
			if cur := p.epochs[phase].Load(); cur == nil || *cur != epoch {
				p.memo.reset()
				p.epochs[phase].Store(&epoch)
			}
			p.epochMu.Unlock()
		}
	}
	// One state per distinct value of the request, whatever slots and
	// phases it is in: one memo lookup, and each head evaluated at most
	// once on it.
	sc.syncMemo()
	n := len(sc.hits)
	for slot, heads := range p.heads[phase] {
		if len(heads) == 0 {
			continue
		}
		mask := p.headMask[phase][slot]
		ents := sc.entries(p.targets[slot])
		for i := range ents {
			e := &ents[i]
			st := sc.valueState(e.md.Value())
			known, match := st.bits[:n], st.bits[n:]
			covered := true
			for w, m := range mask {
				covered = covered && known[w]&m == m
			}
			if !covered {
				if !st.own {
					// The memo's bitsets are shared: copy before adding.
					st.bits = sc.words(st.bits)
					st.own = true
					known, match = st.bits[:n], st.bits[n:]
				}
				sc.evalHeads(&p.headPlan[phase][slot], e, known, match)
				st.dirty = true
			}
			for w, m := range mask {
				sc.hits[w] |= match[w] & m
			}
		}
	}
	for i := range sc.vstates {
		if st := &sc.vstates[i]; st.dirty {
			if len(st.v) <= memoMaxValue {
				p.memo.putIn(sc.memoGen, st.v, slices.Clone(st.bits))
			}
			st.dirty = false
		}
	}
}

// syncMemo drops the request's value states when the head memo was reset
// since they were read: they may hold results of another expansion of the
// macro heads. Results computed before it are not stored (memo.putIn).
func (sc *scratch) syncMemo() {
	if g := sc.p.memo.generation(); g != sc.memoGen {
		sc.dropStates()
		sc.memoGen = g
	}
}

// dropStates forgets the request's value states.
func (sc *scratch) dropStates() {
	clear(sc.vidx)
	clear(sc.vstates)
	sc.vstates = sc.vstates[:0]
	sc.vwords = sc.vwords[:0]
}

// valueState is what the gate knows of one value in the request: bits
// holds the heads evaluated on it and those that match (headMemo's
// layout), shared with the memo until own; dirty when it holds results
// the memo does not have yet.
type valueState struct {
	v          string
	bits       []uint64
	own, dirty bool
}

// valueState returns the state of v, from the request's states, the
// memo, or new.
func (sc *scratch) valueState(v string) *valueState {
	if i, ok := sc.vidx[v]; ok {
		return &sc.vstates[i]
	}
	st := valueState{v: v}
	if len(v) <= memoMaxValue {
		st.bits, _ = sc.p.memo.get(v)
	}
	if st.bits == nil {
		st.bits, st.own = sc.words(nil), true
	}
	sc.vidx[v] = int32(len(sc.vstates))
	sc.vstates = append(sc.vstates, st)
	return &sc.vstates[len(sc.vstates)-1]
}

// words returns 2×len(hits) words of the request's arena holding a copy
// of from (zeros when nil).
func (sc *scratch) words(from []uint64) []uint64 {
	n := 2 * len(sc.hits)
	if len(sc.vwords)+n > cap(sc.vwords) {
		sc.vwords = make([]uint64, 0, max(1024, 4*n))
	}
	start := len(sc.vwords)
	sc.vwords = sc.vwords[:start+n]
	out := sc.vwords[start : start+n : start+n]
	if from != nil {
		copy(out, from)
	} else {
		clear(out)
	}
	return out
}

// evalHeads evaluates on e the heads of a slot's plan that known lacks,
// and adds them to known, those that match to match: each group with
// one transformation and one set scan, the other heads one by one.
func (sc *scratch) evalHeads(plan *headPlan, e *entry, known, match []uint64) {
	for gi := range plan.groups {
		g := &plan.groups[gi]
		done := true
		for w, m := range g.mask {
			done = done && known[w]&m == m
		}
		if done {
			continue
		}
		tr := sc.transformEntry(e, g.chain)
		s := tr.s
		if g.kind != setLatin1 && g.kind != setPM && !utf8.ValidString(s) {
			s = validUTF8(s) // as rx does
		}
		bits := sc.scanOf(&sc.p.sets[g.kind], g.kind, s, tr)
		for _, h := range g.heads {
			w, b := h.hb/64, uint64(1)<<(h.hb%64)
			if known[w]&b != 0 {
				continue
			}
			known[w] |= b
			var ok bool
			if bits == nil {
				ok = h.pat.match(s) // RE2 could not finish: as rx does
			} else {
				idx := h.pat.setIdx[g.kind]
				ok = bits[idx/64]&(1<<(idx%64)) != 0
			}
			if ok != h.negate {
				match[w] |= b
			}
		}
	}
	for _, h := range plan.others {
		w, b := h.hb/64, uint64(1)<<(h.hb%64)
		if known[w]&b != 0 {
			continue
		}
		known[w] |= b
		if sc.headMatches(h, e) {
			match[w] |= b
		}
	}
}

// headMatches evaluates a static head on one value, without effects.
func (sc *scratch) headMatches(l *level, e *entry) bool {
	if l.multiMatch {
		for i, s := range sc.multi(l.chain, e.md.Value()) {
			var tr *trValue
			if i == 0 {
				// The value itself: its set scans are the entry's, shared
				// with the groups and the other heads.
				tr = sc.transformEntry(e, 0)
			}
			if ok, _ := sc.operate(l, s, tr); ok != l.negate {
				return true
			}
		}
		return false
	}
	tr := sc.transformEntry(e, l.chain)
	ok, _ := sc.operate(l, tr.s, tr)
	return ok != l.negate
}

// entry is one cached value of a target with its transformations, filled
// as rules ask for them.
type entry struct {
	md     types.MatchData
	tr     []trValue // by chains[chain]
	chains []int
}

// trValue is a value transformed by one chain, with its set scans.
type trValue struct {
	s              string
	done, identity bool
	scans          [nSetKinds]int32 // scan by kind: 0 not yet, -1 failed, else index+1 in scratch.bitsets
}

// entries returns a cacheable target's values as entries.
func (sc *scratch) entries(t *target) []entry {
	if sc.built[t.slot] {
		return sc.ents[t.slot]
	}
	sc.built[t.slot] = true
	vals := sc.values(t)
	n := sc.p.slotChainCount[t.slot]
	ents := sc.ents[t.slot][:0]
	for _, v := range vals {
		if len(sc.trbuf)+n > cap(sc.trbuf) {
			sc.trbuf = make([]trValue, 0, max(4096, 2*n))
		}
		start := len(sc.trbuf)
		sc.trbuf = sc.trbuf[:start+n]
		tr := sc.trbuf[start : start+n : start+n]
		clear(tr)
		ents = append(ents, entry{md: v, tr: tr, chains: sc.p.slotChains[t.slot]})
	}
	sc.ents[t.slot] = ents
	return ents
}

// transformEntry applies a chain to an entry once. A chain that leaves the
// value unchanged returns the entry's untransformed value (chain 0), so
// that its set scans are shared.
func (sc *scratch) transformEntry(e *entry, chain int) *trValue {
	tr := &e.tr[e.chains[chain]]
	if tr.done {
		if tr.identity {
			return &e.tr[e.chains[0]]
		}
		return tr
	}
	in := e.md.Value()
	out := in
	for _, t := range sc.p.chains[chain] {
		if r, _, err := t(out); err == nil {
			out = r
		}
	}
	tr.done = true
	if out == in {
		tr.identity = true
		id := &e.tr[e.chains[0]]
		id.s, id.done = in, true
		return id
	}
	tr.s = out
	return tr
}

// evaluate runs l's operator on s, and on a match the non-disruptive effects
// later levels read: MATCHED_VARS, captures, setvar.
func (sc *scratch) evaluate(l *level, v types.MatchData, s string, tr *trValue) bool {
	ok, captures := sc.operate(l, s, tr)
	if ok == l.negate {
		return false
	}
	name := v.Variable().Name()
	if v.Key() != "" {
		name += ":" + v.Key()
	}
	sc.mvars = append(sc.mvars, md{v: v.Variable(), key: name, value: s})
	for i, c := range captures {
		sc.local[strconv.Itoa(i)] = []string{c}
	}
	for _, sv := range l.setvars {
		sc.setvar(sv)
	}
	return true
}

// setvar applies one setvar to the rule's TX writes as Coraza's setvar
// action does (arithmetic, errors left as they are).
func (sc *scratch) setvar(sv setvar) {
	key := strings.ToLower(sv.key.Expand(&sc.ovl))
	if sv.del {
		delete(sc.local, key)
		sc.del[key] = true
		return
	}
	val := ""
	if sv.value != nil {
		val = sv.value.Expand(&sc.ovl)
	}
	if val != "" && (val[0] == '+' || val[0] == '-') {
		n := 0
		if len(val) > 1 {
			var err error
			if n, err = strconv.Atoi(val[1:]); err != nil {
				if strings.HasPrefix(val[1:], "tx.") {
					return
				}
				sc.write(key, val)
				return
			}
		}
		cur := 0
		if old := sc.txcol.Get(key); len(old) > 0 && old[0] != "" {
			var err error
			if cur, err = strconv.Atoi(old[0]); err != nil {
				return
			}
		}
		if val[0] == '-' {
			n = -n
		}
		val = strconv.Itoa(cur + n)
	}
	sc.write(key, val)
}

func (sc *scratch) write(key, val string) {
	sc.local[key] = []string{val}
	delete(sc.del, key)
}

// operate runs the operator; captures are returned for capturing @rx
// matches.
func (sc *scratch) operate(l *level, s string, tr *trValue) (bool, []string) {
	if l.argMacro != nil {
		arg := l.argMacro.Expand(&sc.ovl)
		var d dynOp
		// Most macros read the configuration's TX values: the level keeps
		// the operator of its last argument.
		if last := l.lastDyn.Load(); last != nil && last.arg == arg {
			d = last.dynOp
		} else {
			d = sc.p.dynamic(l.opName, arg)
			l.lastDyn.Store(&lastDyn{arg: arg, dynOp: d})
		}
		if d.op == nil {
			return true, nil // could not build it: assume a match
		}
		return d.op.Match(s), nil
	}
	if l.pat == nil {
		if l.pmPat != nil && !sc.mayContain(l.pmPat, s, tr) {
			return false, nil
		}
		return l.op.Match(s), nil
	}
	ok := sc.rx(l.pat, l.setKind, s, tr)
	if ok && l.capture {
		return true, l.pat.submatches(s)
	}
	return ok, nil
}

// rx answers one pattern, from the set scan of s when it can. tr, when
// not nil, keeps the scans of s.
func (sc *scratch) rx(pat *pattern, kind int, s string, tr *trValue) bool {
	idx := pat.setIdx[kind]
	ps := &sc.p.sets[kind]
	if idx < 0 || ps.set == nil {
		return pat.match(s)
	}
	if kind != setLatin1 && kind != setPM && !utf8.ValidString(s) {
		// Go's regexp reads each byte of invalid UTF-8 as U+FFFD; RE2 would
		// stop there: it gets the text Go's regexp sees. (Patterns with
		// Unicode classes, where the two may differ, are not in the sets.)
		s = validUTF8(s)
	}
	bits := sc.scanOf(ps, kind, s, tr)
	if bits == nil {
		return pat.match(s)
	}
	return bits[idx/64]&(1<<(idx%64)) != 0
}

// mayContain reports whether a @pm operator's prefilter matches s (true
// when the set cannot answer).
func (sc *scratch) mayContain(pat *pattern, s string, tr *trValue) bool {
	idx := pat.setIdx[setPM]
	ps := &sc.p.sets[setPM]
	if idx < 0 || ps.set == nil {
		return true
	}
	bits := sc.scanOf(ps, setPM, s, tr)
	return bits == nil || bits[idx/64]&(1<<(idx%64)) != 0
}

// scanOf returns the scan of s by a set, kept in tr when not nil.
func (sc *scratch) scanOf(ps *patternSet, kind int, s string, tr *trValue) []uint64 {
	if tr != nil {
		switch r := tr.scans[kind]; {
		case r > 0:
			return sc.bitsets[r-1]
		case r < 0:
			return nil
		}
	}
	bits := sc.scan(ps, s)
	if tr != nil {
		if bits == nil {
			tr.scans[kind] = -1
		} else {
			sc.bitsets = append(sc.bitsets, bits)
			tr.scans[kind] = int32(len(sc.bitsets))
		}
	}
	return bits
}

// scan returns the bitset of the set's patterns that match s, or nil when
// RE2 could not finish. Short values are remembered across requests (header
// values repeat); others once per request.
func (sc *scratch) scan(ps *patternSet, s string) []uint64 {
	if ps.lits != nil && !ps.lits.mayMatch(s) {
		return ps.none // no literal of any pattern: nothing to remember
	}
	remember := len(s) <= memoMaxValue
	if remember {
		if bits, ok := ps.memo.get(s); ok {
			return bits
		}
	} else if bits, ok := sc.scans[ps][s]; ok {
		return bits
	}
	var bits []uint64
	if k := alphabetOf(s); k >= 0 && ps.alpha != nil && ps.alpha[k] != nil {
		// Only these patterns may match a value over its alphabet.
		bits = make([]uint64, (len(ps.pats)+63)/64)
		for _, i := range ps.alpha[k] {
			if ps.pats[i].match(s) {
				bits[i/64] |= 1 << (i % 64)
			}
		}
	} else if ids, err := ps.set.FindAllStringWithError(s, -1); err == nil {
		bits = make([]uint64, (len(ps.pats)+63)/64)
		for _, id := range ids {
			bits[id/64] |= 1 << (id % 64)
		}
	}
	if remember {
		ps.memo.put(s, bits)
	} else {
		if sc.scans[ps] == nil {
			sc.scans[ps] = map[string][]uint64{}
		}
		sc.scans[ps][s] = bits
	}
	return bits
}

// validUTF8 replaces every byte that is not part of valid UTF-8 by U+FFFD,
// one per byte, as Go's regexp decodes its input.
func validUTF8(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// dynamic returns the operator for an expanded argument.
func (p *Program) dynamic(name, arg string) dynOp {
	key := name + " " + arg
	p.dynMu.Lock()
	d, ok := p.dyn[key]
	p.dynMu.Unlock()
	if ok {
		return d
	}
	o, err := newOperator(name, arg, p)
	if err == nil {
		d.op = o
	}
	p.dynMu.Lock()
	if len(p.dyn) >= maxDynamic {
		clear(p.dyn)
	}
	p.dyn[key] = d
	p.dynMu.Unlock()
	return d
}

// transform applies a transformation chain, memoized per request.
func (sc *scratch) transform(chain int, v types.MatchData) string {
	ts := sc.p.chains[chain]
	s := v.Value()
	if len(ts) == 0 {
		return s
	}
	k := tkey{chain, s}
	if out, ok := sc.tmemo[k]; ok {
		return out
	}
	out := s
	for _, t := range ts {
		if r, _, err := t(out); err == nil {
			out = r
		}
	}
	sc.tmemo[k] = out
	return out
}

// multi returns the values a multiMatch rule evaluates: the original and
// every changed intermediate value.
func (sc *scratch) multi(chain int, s string) []string {
	out := append(sc.strbuf[:0], s)
	for _, t := range sc.p.chains[chain] {
		r, changed, err := t(s)
		if err != nil {
			continue
		}
		if changed {
			out = append(out, r)
			s = r
		}
	}
	sc.strbuf = out[:0]
	return out
}

// values selects a target's values as Coraza's Transaction.GetField does.
func (sc *scratch) values(t *target) []types.MatchData {
	if t.slot >= 0 && sc.have[t.slot] {
		return sc.vals[t.slot]
	}
	col := sc.collection(t.v)
	var out []types.MatchData
	if t.base != nil {
		out = sc.values(t.base)
	} else if t.v == variables.RequestHeaders && t.key != "" && t.keyRx == nil {
		// One snapshot of the headers serves every header selection.
		out = sc.snap(variables.RequestHeaders, &sc.hdSnap).selectKey(t.key)
	} else if col != nil {
		switch {
		case t.keyRx != nil:
			if k, ok := col.(collection.Keyed); ok {
				out = k.FindRegex(t.keyRx)
			}
		case t.key != "":
			if k, ok := col.(collection.Keyed); ok {
				out = k.FindString(t.key)
			}
		default:
			out = sc.findAll(t.v, col)
		}
	}
	if len(t.exceptions) > 0 {
		// A copy only when a value is excepted (out is never modified).
		var kept []types.MatchData
		filtered := false
		for i, m := range out {
			lkey := sc.lower(m.Key())
			excepted := false
			for _, ex := range t.exceptions {
				if (ex.rx != nil && ex.rx.MatchString(lkey)) || (ex.rx == nil && (ex.key == "" || ex.lkey == lkey)) {
					excepted = true
					break
				}
			}
			switch {
			case excepted && !filtered:
				kept, filtered = append(out[:0:0], out[:i]...), true
			case !excepted && filtered:
				kept = append(kept, m)
			}
		}
		if filtered {
			out = kept
		}
	}
	if t.count {
		out = sc.arenaValue(md{v: t.v, key: t.key, value: strconv.Itoa(len(out))})
	}
	if t.slot >= 0 {
		sc.vals[t.slot], sc.have[t.slot] = out, true
	}
	return out
}

// findAll returns every value of a request collection, once per phase;
// TX and MATCHED_* change during evaluation and are read each time.
func (sc *scratch) findAll(v variables.RuleVariable, col collection.Collection) []types.MatchData {
	switch v {
	case variables.TX, variables.MatchedVar, variables.MatchedVars, variables.MatchedVarName, variables.MatchedVarsNames:
		return col.FindAll()
	}
	if out, ok := sc.all[v]; ok {
		return out
	}
	var out []types.MatchData
	if s, ok := col.(collection.Single); ok && col.Name() == v.Name() {
		// The value Single.FindAll returns, without its two allocations.
		out = sc.arenaValue(md{v: v, value: s.Get()})
	} else {
		out = col.FindAll()
	}
	sc.all[v] = out
	return out
}

// arenaValue returns m as a selection of one value, from the request's
// arenas: they are not reused before release, so the values stay as they
// were built.
func (sc *scratch) arenaValue(m md) []types.MatchData {
	sc.counts = append(sc.counts, m)
	sc.countVals = append(sc.countVals, &sc.counts[len(sc.counts)-1])
	n := len(sc.countVals)
	return sc.countVals[n-1 : n : n]
}

// collection returns a variable's collection, with the evaluation's own TX
// writes and MATCHED_* variables in place of the transaction's.
func (sc *scratch) collection(v variables.RuleVariable) collection.Collection {
	switch v {
	case variables.TX:
		return &sc.txcol
	case variables.MatchedVar:
		return &sc.mcols[0]
	case variables.MatchedVars:
		return &sc.mcols[1]
	case variables.MatchedVarName:
		return &sc.mcols[2]
	case variables.MatchedVarsNames:
		return &sc.mcols[3]
	}
	return sc.tx.Collection(v)
}

// overlayTx is the transaction as macros see it during evaluation.
type overlayTx struct {
	plugintypes.TransactionState
	sc *scratch
}

func (o *overlayTx) Collection(v variables.RuleVariable) collection.Collection {
	return o.sc.collection(v)
}

// md is a selected value.
type md struct {
	v          variables.RuleVariable
	key, value string
}

func (m md) Variable() variables.RuleVariable { return m.v }
func (m md) Key() string                      { return m.key }
func (m md) Value() string                    { return m.value }
func (m md) Message() string                  { return "" }
func (m md) Data() string                     { return "" }
func (m md) ChainLevel() int                  { return 0 }

// snapshot is a collection's values with their lower-case keys, taken once
// (the request headers, for the selections of one header each).
type snapshot struct {
	done  bool
	all   []types.MatchData
	lower []string
}

// snap returns the snapshot of a keyed collection.
func (sc *scratch) snap(v variables.RuleVariable, s *snapshot) *snapshot {
	if s.done {
		return s
	}
	s.done = true
	s.all, s.lower = s.all[:0], s.lower[:0]
	if col := sc.tx.Collection(v); col != nil {
		s.all = col.FindAll()
		for _, m := range s.all {
			s.lower = append(s.lower, sc.lower(m.Key()))
		}
	}
	return s
}

// lower returns strings.ToLower(k) without allocating for the keys that
// come back request after request: a key without upper case or non-ASCII
// bytes is its own lower case (strings.ToLower returns it as is), a short
// one is remembered.
func (sc *scratch) lower(k string) string {
	plain := true
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return k
	}
	if len(k) > lowerMaxKey {
		return strings.ToLower(k)
	}
	if l, ok := sc.p.lowers.get(k); ok {
		return l
	}
	l := strings.ToLower(k)
	sc.p.lowers.put(k, l)
	return l
}

// selectKey returns the snapshot's values whose key is lkey (lower case),
// as a case-insensitive collection's FindString.
func (s *snapshot) selectKey(lkey string) []types.MatchData {
	var out []types.MatchData
	for i, k := range s.lower {
		if k == lkey {
			out = append(out, s.all[i])
		}
	}
	return out
}

// txCollection is TX with the current rule's writes over the transaction's.
type txCollection struct{ sc *scratch }

func (c *txCollection) real() collection.Keyed {
	k, _ := c.sc.tx.Collection(variables.TX).(collection.Keyed)
	return k
}

func (c *txCollection) pristine() bool { return len(c.sc.local) == 0 && len(c.sc.del) == 0 }

func (c *txCollection) Name() string { return "TX" }

func (c *txCollection) Get(key string) []string {
	key = strings.ToLower(key)
	if v, ok := c.sc.local[key]; ok {
		return v
	}
	if c.sc.del[key] {
		return nil
	}
	if r := c.real(); r != nil {
		return r.Get(key)
	}
	return nil
}

func (c *txCollection) FindString(key string) []types.MatchData {
	if key == "" {
		return c.FindAll()
	}
	key = strings.ToLower(key)
	if v, ok := c.sc.local[key]; ok {
		return []types.MatchData{md{v: variables.TX, key: key, value: v[0]}}
	}
	if c.sc.del[key] {
		return nil
	}
	if r := c.real(); r != nil {
		return r.FindString(key)
	}
	return nil
}

func (c *txCollection) FindRegex(re *regexp.Regexp) []types.MatchData {
	var real []types.MatchData
	if r := c.real(); r != nil {
		real = r.FindRegex(re)
	}
	return c.merge(real, re.MatchString)
}

func (c *txCollection) FindAll() []types.MatchData {
	var real []types.MatchData
	if r := c.real(); r != nil {
		real = r.FindAll()
	}
	return c.merge(real, func(string) bool { return true })
}

// merge returns the transaction's values the rule has not overwritten and
// the rule's own writes whose key keep accepts.
func (c *txCollection) merge(real []types.MatchData, keep func(string) bool) []types.MatchData {
	out := real
	if !c.pristine() {
		out = real[:0:0]
		for _, m := range real {
			if !c.overridden(strings.ToLower(m.Key())) {
				out = append(out, m)
			}
		}
	}
	for k, v := range c.sc.local {
		if keep(k) {
			out = append(out, md{v: variables.TX, key: k, value: v[0]})
		}
	}
	return out
}

func (c *txCollection) overridden(k string) bool {
	if _, over := c.sc.local[k]; over {
		return true
	}
	return c.sc.del[k]
}

// matchedCollection serves MATCHED_VAR, MATCHED_VARS, MATCHED_VAR_NAME and
// MATCHED_VARS_NAMES from the current rule's matches.
type matchedCollection struct {
	sc *scratch
	v  variables.RuleVariable
}

func (c *matchedCollection) Name() string { return c.v.Name() }

func (c *matchedCollection) Get(key string) []string {
	var out []string
	for _, m := range c.FindString(key) {
		out = append(out, m.Value())
	}
	return out
}

func (c *matchedCollection) FindString(key string) []types.MatchData {
	if key == "" {
		return c.FindAll()
	}
	return c.filter(func(k string) bool { return strings.EqualFold(k, key) })
}

func (c *matchedCollection) FindRegex(re *regexp.Regexp) []types.MatchData {
	return c.filter(func(k string) bool { return re.MatchString(strings.ToLower(k)) })
}

func (c *matchedCollection) FindAll() []types.MatchData {
	return c.filter(func(string) bool { return true })
}

func (c *matchedCollection) filter(keep func(string) bool) []types.MatchData {
	mv := c.sc.mvars
	switch c.v {
	case variables.MatchedVar, variables.MatchedVarName:
		if len(mv) == 0 {
			return nil
		}
		last := mv[len(mv)-1]
		if c.v == variables.MatchedVar {
			return []types.MatchData{md{v: c.v, value: last.value}}
		}
		return []types.MatchData{md{v: c.v, value: last.key}}
	}
	var out []types.MatchData
	for _, m := range mv {
		if !keep(m.key) {
			continue
		}
		if c.v == variables.MatchedVars {
			out = append(out, md{v: c.v, key: m.key, value: m.value})
		} else {
			out = append(out, md{v: c.v, key: m.key, value: m.key})
		}
	}
	return out
}

// Stats describes a compiled program (for tests and diagnostics).
func (p *Program) Stats() string {
	alone := 0
	for _, pat := range p.pats {
		in := false
		for k := range nSetKinds {
			in = in || pat.setIdx[k] >= 0
		}
		if !in {
			alone++
		}
	}
	pure, semi := 0, 0
	var semiIDs []int
	for _, ph := range p.phases {
		for _, r := range ph {
			if r.pure {
				pure++
			}
			if r.semi {
				semi++
				semiIDs = append(semiIDs, r.id)
			}
		}
	}
	return fmt.Sprintf("chains remembered: %d pure, %d semi-pure %v; ", pure, semi, semiIDs) + fmt.Sprintf("rules %d+%d, patterns %d (sets: text %d, decoded %d, Latin-1 %d; alone %d), chains %d, targets %d",
		len(p.phases[1]), len(p.phases[2]), len(p.pats), len(p.sets[setText].pats), len(p.sets[setDecoded].pats),
		len(p.sets[setLatin1].pats), alone, len(p.chains), len(p.targets))
}
