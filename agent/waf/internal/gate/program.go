package gate

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/corazawaf/coraza/v3/experimental/plugins/macro"
	"github.com/corazawaf/coraza/v3/types/variables"
	"github.com/wasilibs/go-re2/experimental"

	"github.com/taskguard/taskguard/agent/waf/internal/ruleops"
)

// Program is the compiled form of the rules a gate covers: for each request
// phase, the rules Coraza would evaluate between the gate rule and the end
// marker.
type Program struct {
	phases  [3][]*rule // by phase (1, 2)
	chains  [][]ruleops.Transformation
	targets []*target // distinct cacheable targets, by target.slot
	pats    []*pattern
	// sets: the UTF-8 patterns of text chains, those of decoding chains
	// (base64Decode and the like turn values into arbitrary bytes, which
	// the large set's automaton handles slowly), and the byte patterns
	// (binaryregexp's) in RE2's Latin-1 mode, which reads every byte as one
	// character as binaryregexp does.
	sets        [nSetKinds]patternSet
	chainDecode []bool // by chain
	root        fs.FS

	// dynamic caches operators whose argument holds a macro, by expanded argument.
	dynMu sync.Mutex
	dyn   map[string]dynOp

	scratch sync.Pool

	// heads[phase][slot] are the static heads of phase's rules that read
	// target slot, headMask[phase][slot] their bits (level.hb). A static
	// head's result depends on the value alone, not on the target it came
	// from: memo remembers, by value, which heads (of either phase: level.hb
	// numbers the heads of both) were evaluated on it and which of them
	// match, whatever slots and phases the value was seen in.
	heads    [3][][]*level
	headMask [3][][]uint64
	// headPlan[phase][slot] is how headHits evaluates those heads on a
	// value (compileHeadPlans).
	headPlan [3][]headPlan
	memo     headMemo
	nHeads   int
	// lowers remembers the lower-case form of short keys that have upper
	// case (header names above all): selections and exceptions compare
	// lower-case keys, and the same names come in every request.
	lowers memo[string]
	// macroHeads are the static heads whose argument holds a TX macro;
	// epochs[phase] is their expansion in phase the memo was filled with.
	macroHeads [3][]*level
	epochMu    sync.Mutex
	epochs     [3]atomic.Pointer[string]

	// files are the rule files of the covered rules that Coraza can skip
	// one at a time (Options.FileFlags).
	files []ruleFile

	// slotChains[slot][chain] is the chain's index in the entries of the
	// slot's values (-1: no level applies that chain to the slot), and
	// slotChainCount[slot] their number.
	slotChains     [][]int
	slotChainCount []int
}

// headMemo maps a value to two bitsets by level.hb, one after the other:
// the static heads evaluated on it, and those of them that match it.
// Bitsets are never changed once stored.
type headMemo = memo[[]uint64]

// Set kinds (Program.sets, pattern.setIdx, level.setKind).
const (
	setText = iota
	setDecoded
	setLatin1
	// setPM holds one pattern per @pm operator: its phrases, case-folded,
	// in Latin-1 mode. It matches whenever the operator does (and more:
	// Latin-1 letters fold too), so it rules values out before the
	// operator's own automaton runs.
	setPM
	nSetKinds
)

// decodingTransforms turn text into arbitrary bytes.
var decodingTransforms = map[string]bool{
	"base64decode": true, "base64decodeext": true, "hexdecode": true, "sqlhexdecode": true,
	"md5": true, "sha1": true,
}

// patternSet is one RE2 set and the memo of its scans.
type patternSet struct {
	set  *experimental.Set
	pats []*pattern // by pattern.setIdx
	memo memo[[]uint64]
	// alpha holds, per alphabet (alphabet.go), the indices of the patterns
	// that may match a value over it, or nil when there are too many to
	// answer one by one faster than a set scan.
	alpha [][]int
	// lits is the set's required-literal prefilter (literals.go), nil when
	// a pattern has none; none is the scan of a value it rules out.
	lits *literalFilter
	none []uint64
}

// lastDyn is a level's operator for its last expanded argument.
type lastDyn struct {
	arg string
	dynOp
}

// dynOp is an operator built for one expanded argument (nil: it could not
// be built, and the gate assumes a match).
type dynOp struct {
	op ruleops.Operator
}

// rule is one top-level rule: its chain levels, head first.
type rule struct {
	id     int
	file   int // index in Program.files
	tags   []string
	levels []*level
	// quiet rules (pass, nolog, no setvar) only change which later rules
	// or targets Coraza evaluates: a full match of one does not stop the
	// gate, which evaluates every later rule with every target anyway. Its
	// target removals (ctl) are applied when the gate skips the phase, as
	// Coraza would have applied them.
	quiet bool
	ctls  []ctlEffect
	// pure rules (see pureRule) remember their result by their values;
	// semi-pure ones (see semiPure) by their values and the TX values
	// they read from the transaction (realKeys).
	pure, semi bool
	realKeys   []string
	memo       ruleMemo
	group      int           // index of the rule's group in the configuration
	parsed     []*parsedRule // the rule as written
}

// ruleFile is one rule file the gate can let Coraza skip alone.
type ruleFile struct {
	name, flag string
	// after: skipping this file is sound only when these earlier files are
	// skipped too (they may write what its rules read), by index; global:
	// never alone (a rule of it or before it acts beyond its own file).
	after  []int
	global bool
}

// fileIndex returns the index of file in p.files, adding it; -1 if it has
// no flag.
func fileIndex(p *Program, file string, flags map[string]string) int {
	flag, ok := flags[file]
	if !ok {
		return -1
	}
	for i, f := range p.files {
		if f.name == file {
			return i
		}
	}
	p.files = append(p.files, ruleFile{name: file, flag: flag})
	return len(p.files) - 1
}

// ruleMemo maps the values a pure rule reads to whether it matches.
type ruleMemo = memo[bool]

// ctlEffect is a ctl:ruleRemoveTargetById or ruleRemoveTargetByTag.
type ctlEffect struct {
	ids   []int // resolved after compilation for ByTag
	tag   string
	v     variables.RuleVariable
	key   string
	keyRx *regexp.Regexp
}

// level is one SecRule of a chain.
type level struct {
	targets    []*target
	negate     bool
	opName     string
	arg        string
	argMacro   macro.Macro // non-nil when arg holds %{...}
	lastDyn    atomic.Pointer[lastDyn]
	op         ruleops.Operator
	pat        *pattern // @rx without macro
	pmPat      *pattern // the setPM prefilter of a @pm operator
	setKind    int      // the set answering pat
	chain      int      // index into Program.chains
	multiMatch bool
	capture    bool
	setvars    []setvar
	// hb is the level's bit in the head memo when it is a static head
	// (its result depends only on a cacheable target's value), else -1.
	hb int
	// sideEffects: when this level matches and the rule does not, Coraza
	// leaves state behind that other rules read (ctl, or a TX variable read
	// outside this rule): the gate cannot skip the phase.
	sideEffects bool
}

// setvar is one setvar action on the tx collection.
type setvar struct {
	key, value macro.Macro
	del        bool
}

// target is one variable of a rule, as Coraza selects it.
type target struct {
	v          variables.RuleVariable
	key        string
	keyRx      *regexp.Regexp
	count      bool
	exceptions []exception
	// slot indexes the request-scoped value cache; -1 for values that
	// change during evaluation (TX, MATCHED_*).
	slot int
	// invariant: the values are the same in both request phases.
	invariant bool
	// base is the same selection without exceptions and counting (nil when
	// this is it).
	base *target
}

type exception struct {
	key  string
	lkey string // key in lower case
	rx   *regexp.Regexp
}

// Options names the gate rules inside a configuration.
type Options struct {
	// GateIDs are the IDs of the gate rules, one per request phase: the
	// rules after the later of them and before EndMarker are covered.
	GateIDs []int
	// EndMarker is the SecMarker the gate rules skip to.
	EndMarker string
	// FileFlags names, by rule file (as included), the TX variable through
	// which the gate lets Coraza skip that file's rules alone when it cannot
	// skip them all: it sets NAME_p1 or NAME_p2 to 1 for a phase, and a rule
	// before the file skips it. Rules reading TX variables whose name starts
	// with FlagPrefix are the configuration's own and not covered.
	FileFlags  map[string]string
	FlagPrefix string
	// SetupAction names an action outside SecLang's (a plugin) and
	// SetupTX the TX variables it sets: the only ones it writes. Any other
	// unknown action may write any TX variable.
	SetupAction string
	SetupTX     []string
}

// Compile reads a Coraza configuration (Include resolved in root) and
// compiles the rules between the gate rules and the end marker.
func Compile(root fs.FS, config string, opts Options) (*Program, error) {
	dirs, err := readDirectives(root, config, "config", 0)
	if err != nil {
		return nil, err
	}
	var groups [][]*parsedRule // rules in order, each with its chain
	start, end := -1, -1
	// Removals apply to the rules defined before them, as in Coraza:
	// each remembers how many groups there were.
	var removedIDs []idRemoval
	var removedTags []tagRemoval
	updates := map[int][]string{}
	markerFiles := map[string]string{}
	inChain := false
	for _, d := range dirs {
		switch d.name {
		case "secrule", "secaction":
			pr := &parsedRule{file: d.file}
			if d.name == "secrule" {
				pr.vars, pr.op, pr.actions, err = parseSecRule(d.args)
			} else {
				pr.actions, err = parseActions(strings.Trim(d.args, `"`))
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", baseName(d.file), err)
			}
			if inChain {
				groups[len(groups)-1] = append(groups[len(groups)-1], pr)
			} else {
				groups = append(groups, []*parsedRule{pr})
				if slices.Contains(opts.GateIDs, pr.id()) {
					start = len(groups)
				}
			}
			inChain = pr.has("chain")
		case "secmarker":
			markerFiles[strings.Trim(d.args, `"'`)] = d.file
			if strings.Trim(d.args, `"'`) == opts.EndMarker && start >= 0 && end < 0 {
				end = len(groups)
			}
		case "secruleremovebyid":
			r, err := parseIDRanges(d.args)
			if err != nil {
				return nil, err
			}
			for _, ids := range r {
				removedIDs = append(removedIDs, idRemoval{ids, len(groups)})
			}
		case "secruleremovebytag":
			removedTags = append(removedTags, tagRemoval{strings.Trim(d.args, `"'`), len(groups)})
		case "secruleupdatetargetbyid":
			id, targets, _ := strings.Cut(d.args, " ")
			n, err := strconv.Atoi(strings.Trim(id, `"'`))
			if err != nil {
				return nil, fmt.Errorf("SecRuleUpdateTargetById %q: %w", d.args, err)
			}
			updates[n] = append(updates[n], strings.Trim(strings.TrimSpace(targets), `"'`))
		}
	}
	if start < 0 || end < 0 {
		return nil, fmt.Errorf("gate rules %v or marker %q not found", opts.GateIDs, opts.EndMarker)
	}
	p := &Program{root: root, dyn: map[string]dynOp{}, chains: [][]ruleops.Transformation{nil}, chainDecode: []bool{false}}
	chainIDs := map[string]int{"": 0}
	slots := map[string]*target{}
	rxs := map[string]*pattern{}
	// TX variables read by every rule (outside the gated range too): a
	// partial match that writes one of them leaves state behind.
	reads := txReads(groups)
	for gi := start; gi < end; gi++ {
		g := groups[gi]
		head := g[0]
		id := head.id()
		if id == 0 && head.op == "" && !head.has("phase") {
			continue
		}
		if removed(gi, id, head.tags(), removedIDs, removedTags) {
			continue
		}
		phase, _ := strconv.Atoi(head.value("phase"))
		switch head.value("phase") {
		case "request":
			phase = 2
		case "":
			phase = 2
		}
		if phase != 1 && phase != 2 {
			continue // response and logging phases do not run in the proxy
		}
		if opts.FlagPrefix != "" && strings.HasPrefix(strings.ToLower(head.vars), "tx:"+strings.ToLower(opts.FlagPrefix)) {
			continue // a file-skip rule of the configuration
		}
		r := &rule{id: id, tags: head.tags(), file: fileIndex(p, head.file, opts.FileFlags), group: gi, parsed: g}
		r.memo.limit = ruleEntries
		r.quiet, r.ctls = quietRule(g)
		for li, pr := range g {
			l, err := p.compileLevel(pr, chainIDs, slots, rxs, subRoot(root, pr.file))
			if err != nil {
				return nil, fmt.Errorf("rule %d: %w", id, err)
			}
			if li == 0 {
				for _, u := range updates[id] {
					if err := addUpdates(l, u); err != nil {
						return nil, fmt.Errorf("rule %d: SecRuleUpdateTargetById: %w", id, err)
					}
				}
			}
			if li < len(g)-1 {
				l.sideEffects = partialEffects(pr, gi, reads)
			}
			shareTargets(l, slots, li == 0)
			if l.pat != nil {
				switch {
				case l.pat.binary != nil:
					l.setKind = setLatin1
				case p.chainDecode[l.chain]:
					l.setKind = setDecoded
				default:
					l.setKind = setText
				}
				l.pat.inKind[l.setKind] = true
			}
			r.levels = append(r.levels, l)
		}
		p.phases[phase] = append(p.phases[phase], r)
	}
	for _, t := range slots {
		if t.slot >= 0 {
			p.targets = append(p.targets, t)
		}
	}
	slices.SortFunc(p.targets, func(a, b *target) int { return a.slot - b.slot })
	p.slotChains = make([][]int, len(p.targets))
	p.slotChainCount = make([]int, len(p.targets))
	for i := range p.slotChains {
		p.slotChains[i] = make([]int, len(p.chains))
		for c := range p.slotChains[i] {
			p.slotChains[i][c] = -1
		}
	}
	for _, ph := range p.phases {
		for _, r := range ph {
			for _, l := range r.levels {
				for _, t := range l.targets {
					if t.slot < 0 {
						continue
					}
					for _, c := range []int{0, l.chain} {
						if p.slotChains[t.slot][c] < 0 {
							p.slotChains[t.slot][c] = p.slotChainCount[t.slot]
							p.slotChainCount[t.slot]++
						}
					}
				}
			}
		}
	}
	p.lowers.limit = lowerEntries
	p.memo.limit = headEntries
	for phase := 1; phase <= 2; phase++ {
		p.heads[phase] = make([][]*level, len(p.targets))
		for _, r := range p.phases[phase] {
			h := r.levels[0]
			h.hb = -1
			// A macro in the argument may only read TX (the same for every
			// value of the request; the memo starts over when it changes).
			static := (h.argMacro == nil || txOnlyMacro(h.arg)) && len(h.targets) > 0
			for _, t := range h.targets {
				static = static && t.slot >= 0
			}
			if !static {
				continue
			}
			h.hb = p.nHeads
			p.nHeads++
			if h.argMacro != nil {
				p.macroHeads[phase] = append(p.macroHeads[phase], h)
			}
			r.pure = pureRule(r)
			for _, t := range h.targets {
				if !slices.Contains(p.heads[phase][t.slot], h) {
					p.heads[phase][t.slot] = append(p.heads[phase][t.slot], h)
				}
			}
		}
	}
	for phase := 1; phase <= 2; phase++ {
		p.headMask[phase] = make([][]uint64, len(p.targets))
		for slot, heads := range p.heads[phase] {
			if len(heads) == 0 {
				continue
			}
			mask := make([]uint64, (p.nHeads+63)/64)
			for _, h := range heads {
				mask[h.hb/64] |= 1 << (h.hb % 64)
			}
			p.headMask[phase][slot] = mask
		}
	}
	for _, ph := range p.phases {
		for _, r := range ph {
			for i, c := range r.ctls {
				if c.tag == "" {
					continue
				}
				for _, ph2 := range p.phases {
					for _, r2 := range ph2 {
						if slices.Contains(r2.tags, c.tag) {
							r.ctls[i].ids = append(r.ctls[i].ids, r2.id)
						}
					}
				}
			}
		}
	}
	if err := p.compileSet(rxs); err != nil {
		return nil, err
	}
	p.compileHeadPlans()
	p.fileDependencies(groups[start:end], markerFiles)
	w := txWriters(groups, opts)
	for _, ph := range p.phases {
		for _, r := range ph {
			if !r.pure && len(r.levels) > 1 && r.levels[0].hb >= 0 {
				r.semi, r.realKeys = semiPure(r, w)
			}
		}
	}
	p.scratch.New = func() any { return newScratch(p) }
	return p, nil
}

// Rules returns the IDs of the rules the gate covers in phase.
func (p *Program) Rules(phase int) []int {
	if phase < 1 || phase > 2 {
		return nil
	}
	ids := make([]int, 0, len(p.phases[phase]))
	for _, r := range p.phases[phase] {
		ids = append(ids, r.id)
	}
	return ids
}

// idRemoval is a SecRuleRemoveById range and the number of rule groups
// defined before it; tagRemoval the same for SecRuleRemoveByTag.
type idRemoval struct {
	ids    [2]int
	groups int
}

type tagRemoval struct {
	tag    string
	groups int
}

// removed reports whether a removal that follows group gi removes it.
func removed(gi, id int, tags []string, ids []idRemoval, removedTags []tagRemoval) bool {
	for _, r := range ids {
		if gi < r.groups && id >= r.ids[0] && id <= r.ids[1] {
			return true
		}
	}
	for _, r := range removedTags {
		if gi < r.groups && slices.Contains(tags, r.tag) {
			return true
		}
	}
	return false
}

// compileLevel compiles one SecRule of a chain.
func (p *Program) compileLevel(pr *parsedRule, chainIDs map[string]int, slots map[string]*target, rxs map[string]*pattern, dir fs.FS) (*level, error) {
	l := &level{}
	if pr.op == "" {
		l.opName = "unconditionalMatch"
		l.targets = []*target{{v: variables.RequestMethod, slot: -1}}
		// A SecAction matches once; model it as a target that is always
		// there. REQUEST_METHOD is always set.
	} else {
		vars, err := parseVars(pr.vars)
		if err != nil {
			return nil, err
		}
		for _, rv := range vars {
			v, err := variables.Parse(rv.name)
			if err != nil {
				return nil, err
			}
			if rv.negation {
				ex, err := newException(v, rv.key)
				if err != nil {
					return nil, err
				}
				for _, t := range l.targets {
					if t.v == v {
						t.exceptions = append(t.exceptions, ex)
					}
				}
				continue
			}
			t, err := newTarget(v, rv.key, rv.count)
			if err != nil {
				return nil, err
			}
			l.targets = append(l.targets, t)
		}
		if err := p.compileOperator(l, pr.op, rxs, dir); err != nil {
			return nil, err
		}
	}
	var names []string
	for _, a := range pr.actions {
		switch a.name {
		case "t":
			if strings.EqualFold(a.value, "none") {
				names = names[:0]
				continue
			}
			names = append(names, strings.ToLower(a.value))
		case "multimatch":
			l.multiMatch = true
		case "capture":
			l.capture = true
		case "setvar":
			sv, err := newSetvar(a.value)
			if err != nil {
				return nil, err
			}
			l.setvars = append(l.setvars, sv)
		}
	}
	key := strings.Join(names, ",")
	id, ok := chainIDs[key]
	if !ok {
		var chain []ruleops.Transformation
		for _, n := range names {
			t, err := ruleops.GetTransformation(n)
			if err != nil {
				return nil, err
			}
			chain = append(chain, t)
		}
		id = len(p.chains)
		p.chains = append(p.chains, chain)
		decodes := false
		for _, n := range names {
			decodes = decodes || decodingTransforms[n]
		}
		p.chainDecode = append(p.chainDecode, decodes)
		chainIDs[key] = id
	}
	l.chain = id
	return l, nil
}

// fileDependencies finds, for every file the gate may let Coraza skip
// alone, the earlier files whose rules may write a TX variable its rules
// read (captures TX:0-9 aside: CRS reads them only in the chain that
// captured them), and marks the files that cannot be skipped alone: those
// from the first rule that acts beyond its own file on — a ctl action other
// than target or rule removals and body-processing switches (which act
// between the phases, and the phase-2 gate sees their result), a skipAfter
// to a marker of another file, a skip past the end of its file.
func (p *Program) fileDependencies(groups [][]*parsedRule, markerFiles map[string]string) {
	if len(p.files) == 0 {
		return
	}
	idx := map[string]int{}
	for i, f := range p.files {
		idx[f.name] = i
	}
	reads := make([]map[string]bool, len(p.files))
	for i := range reads {
		reads[i] = map[string]bool{}
	}
	writes := make([][]string, len(p.files))
	global := len(p.files)
	beyond := func(file string) {
		if fi, ok := idx[file]; ok && fi < global {
			global = fi
		} else if !ok {
			global = 0 // a rule outside every file
		}
	}
	macroRe := regexp.MustCompile(`(?i)%\{tx\.([^}]+)\}`)
	for gi, g := range groups {
		file := g[0].file
		fi, inFile := idx[file]
		for _, pr := range g {
			if inFile {
				vars, _ := parseVars(pr.vars)
				for _, v := range vars {
					if v.name == "TX" && !v.negation {
						reads[fi][strings.ToLower(v.key)] = true
					}
				}
			}
			texts := []string{pr.op}
			for _, a := range pr.actions {
				texts = append(texts, a.value)
				switch a.name {
				case "setvar":
					if inFile {
						k, _, _ := strings.Cut(strings.TrimPrefix(a.value, "!"), "=")
						_, name, _ := strings.Cut(strings.ToLower(k), ".")
						writes[fi] = append(writes[fi], name)
					}
				case "ctl":
					kind, _, _ := strings.Cut(a.value, "=")
					switch kind {
					case "ruleRemoveTargetById", "ruleRemoveTargetByTag", "ruleRemoveTargetByMsg",
						"ruleRemoveById", "ruleRemoveByTag", "ruleRemoveByMsg",
						"forceRequestBodyVariable", "requestBodyProcessor", "requestBodyAccess":
					default:
						beyond(file)
					}
				case "skipafter":
					if markerFiles[strings.Trim(a.value, `"'`)] != file {
						beyond(file)
					}
				case "skip":
					n, err := strconv.Atoi(a.value)
					if err != nil || gi+n >= len(groups) || groups[gi+n][0].file != file {
						beyond(file)
					}
				}
			}
			if inFile {
				for _, t := range texts {
					for _, m := range macroRe.FindAllStringSubmatch(t, -1) {
						reads[fi][strings.ToLower(m[1])] = true
					}
				}
			}
		}
	}
	for fi := range p.files {
		if fi >= global {
			p.files[fi].global = true
			continue
		}
		for ei := 0; ei < fi; ei++ {
			if writesRead(writes[ei], reads[fi]) {
				p.files[fi].after = append(p.files[fi].after, ei)
			}
		}
	}
}

// writesRead reports whether a TX write (names, possibly with macros) may be
// one of the reads (names or /regex/ keys); capture indexes do not count.
func writesRead(writes []string, reads map[string]bool) bool {
	for _, w := range writes {
		static, _, dynamic := strings.Cut(w, "%{")
		for r := range reads {
			if len(r) == 1 && r[0] >= '0' && r[0] <= '9' {
				continue
			}
			if r == "" || readHits(r, w, static, dynamic) {
				return true
			}
		}
	}
	return false
}

// txOnlyMacro reports whether every macro of s reads TX.
func txOnlyMacro(s string) bool {
	for {
		i := strings.Index(s, "%{")
		if i < 0 {
			return true
		}
		s = s[i+2:]
		if len(s) < 3 || !strings.EqualFold(s[:3], "tx.") {
			return false
		}
	}
}

// pureRule reports whether a chain's result depends only on the values of
// its targets: every level reads cacheable targets with a fixed argument,
// and no level but the last captures or sets variables (which later
// levels could read).
func pureRule(r *rule) bool {
	if len(r.levels) < 2 {
		return false // a single static head needs no memo of its own
	}
	for i, l := range r.levels {
		if l.argMacro != nil || (i < len(r.levels)-1 && (l.capture || len(l.setvars) > 0)) {
			return false
		}
		for _, t := range l.targets {
			if t.slot < 0 || t.v == variables.TX {
				return false
			}
		}
	}
	return true
}

// knownActions are SecLang's actions; of them only setvar and capture
// write TX variables (initcol and the like write other collections).
var knownActions = map[string]bool{
	"id": true, "phase": true, "msg": true, "logdata": true, "tag": true, "ver": true, "rev": true,
	"severity": true, "maturity": true, "accuracy": true, "t": true, "pass": true, "block": true,
	"deny": true, "drop": true, "allow": true, "redirect": true, "proxy": true, "status": true,
	"nolog": true, "log": true, "auditlog": true, "noauditlog": true, "capture": true, "chain": true,
	"multimatch": true, "skip": true, "skipafter": true, "setvar": true, "ctl": true, "exec": true,
	"expirevar": true, "initcol": true, "setenv": true, "setsid": true, "setuid": true,
	"sanitisearg": true, "sanitisematched": true, "sanitisematchedbytes": true,
	"sanitiserequestheader": true, "sanitiseresponseheader": true, "append": true, "prepend": true,
	"deprecatevar": true, "xmlns": true, "setrsc": true, "sanitizearg": true,
}

// writers records which rule groups may write which TX variables.
type writers struct {
	any    bool             // an unknown action may write anything
	static map[string][]int // full names → groups (-1: the setup)
	prefix map[string][]int // static prefixes of names built with macros
}

func txWriters(groups [][]*parsedRule, opts Options) *writers {
	w := &writers{static: map[string][]int{}, prefix: map[string][]int{}}
	for _, n := range opts.SetupTX {
		w.static[strings.ToLower(n)] = append(w.static[strings.ToLower(n)], -1)
	}
	for gi, g := range groups {
		for _, pr := range g {
			for _, a := range pr.actions {
				switch {
				case a.name == "setvar":
					k, _, _ := strings.Cut(strings.TrimPrefix(a.value, "!"), "=")
					col, name, _ := strings.Cut(strings.ToLower(k), ".")
					if col != "tx" {
						continue
					}
					if static, _, dyn := strings.Cut(name, "%{"); dyn {
						w.prefix[static] = append(w.prefix[static], gi)
					} else {
						w.static[name] = append(w.static[name], gi)
					}
				case a.name == opts.SetupAction && opts.SetupAction != "":
				case !knownActions[a.name]:
					w.any = true
				}
			}
		}
	}
	return w
}

// onlyBy reports whether every possible writer of the TX names a read
// selects (name, or /regex/) is group gi.
func (w *writers) onlyBy(read string, gi int) bool {
	if w.any {
		return false
	}
	var re *regexp.Regexp
	if strings.HasPrefix(read, "/") && strings.HasSuffix(read, "/") && len(read) >= 2 {
		var err error
		if re, err = regexp.Compile(read[1 : len(read)-1]); err != nil {
			return false
		}
	}
	hits := func(name string, prefix bool) bool {
		if re == nil {
			return read == name || (prefix && strings.HasPrefix(read, name))
		}
		return readHits(read, name, name, prefix)
	}
	for name, gs := range w.static {
		if hits(name, false) && slices.ContainsFunc(gs, func(g int) bool { return g != gi }) {
			return false
		}
	}
	for name, gs := range w.prefix {
		if hits(name, true) && slices.ContainsFunc(gs, func(g int) bool { return g != gi }) {
			return false
		}
	}
	return true
}

// semiPure reports whether a chain's result depends only on its targets'
// values and on TX values it reads from the transaction by name (realKeys,
// part of its memo key): its TX selections by regular expression may only
// see its own writes, and its macros only read TX and MATCHED_VAR.
func semiPure(r *rule, w *writers) (bool, []string) {
	var real []string
	addReal := func(k string) {
		if !slices.Contains(real, k) {
			real = append(real, k)
		}
	}
	macroRe := regexp.MustCompile(`%\{([^}]+)\}`)
	for i, l := range r.levels {
		pr := r.parsed[i]
		for _, t := range l.targets {
			switch {
			case t.slot >= 0:
			case t.v == variables.TX && t.keyRx != nil:
				if !w.onlyBy("/"+t.keyRx.String()+"/", r.group) {
					return false, nil
				}
			case t.v == variables.TX && t.key != "":
				// Captures (TX:0-9) not set by this match keep what an
				// earlier rule captured: always part of the key.
				if isDigit(t.key) || !w.onlyBy(t.key, r.group) {
					addReal(t.key)
				}
			case t.v == variables.MatchedVar || t.v == variables.MatchedVars || t.v == variables.MatchedVarName || t.v == variables.MatchedVarsNames:
			default:
				return false, nil
			}
		}
		texts := []string{}
		if l.argMacro != nil {
			texts = append(texts, l.arg)
		}
		for _, a := range pr.actions {
			if a.name == "setvar" {
				texts = append(texts, a.value)
			}
		}
		for _, tx := range texts {
			for _, m := range macroRe.FindAllStringSubmatch(tx, -1) {
				name := strings.ToLower(m[1])
				switch {
				case name == "matched_var" || name == "matched_var_name":
				case strings.HasPrefix(name, "tx."):
					k := name[3:]
					if isDigit(k) || !w.onlyBy(k, r.group) {
						addReal(k)
					}
				default:
					return false, nil
				}
			}
		}
	}
	return true, real
}

func isDigit(s string) bool { return len(s) == 1 && s[0] >= '0' && s[0] <= '9' }

// quietRule reports whether a rule's actions only steer evaluation: no
// logging, no message, no variables set, no disruptive action but pass.
func quietRule(g []*parsedRule) (bool, []ctlEffect) {
	var ctls []ctlEffect
	for _, pr := range g {
		if pr.op == "" {
			return false, nil // SecAction: always matches, keep it simple
		}
		for _, a := range pr.actions {
			switch a.name {
			case "id", "phase", "pass", "nolog", "noauditlog", "t", "tag", "ver", "rev", "maturity", "accuracy",
				"chain", "capture", "multimatch", "skip", "skipafter":
			case "ctl":
				c, ok := parseCtlRemove(a.value)
				if !ok {
					return false, nil
				}
				ctls = append(ctls, c)
			default:
				return false, nil
			}
		}
	}
	return true, ctls
}

// parseCtlRemove parses the target removals the gate can apply, as
// Coraza's ctl action parses them.
func parseCtlRemove(s string) (ctlEffect, bool) {
	kind, val, ok := strings.Cut(s, "=")
	if !ok {
		return ctlEffect{}, false
	}
	value, col, _ := strings.Cut(val, ";")
	colname, colkey, _ := strings.Cut(col, ":")
	colkey = strings.TrimSpace(colkey)
	v, err := variables.Parse(strings.TrimSpace(colname))
	if err != nil {
		return ctlEffect{}, false
	}
	c := ctlEffect{v: v}
	if len(colkey) >= 2 && colkey[0] == '/' && colkey[len(colkey)-1] == '/' {
		re, err := regexp.Compile(colkey[1 : len(colkey)-1])
		if err != nil || len(colkey) == 2 {
			return ctlEffect{}, false
		}
		c.keyRx = re
	} else {
		c.key = strings.ToLower(colkey)
	}
	switch kind {
	case "ruleRemoveTargetByTag":
		c.tag = value
	case "ruleRemoveTargetById":
		id, err := strconv.Atoi(value)
		if err != nil {
			return ctlEffect{}, false
		}
		c.ids = []int{id}
	default:
		return ctlEffect{}, false
	}
	return c, true
}

// shareTargets gives targets with the same selection one slot of the
// request-scoped value cache.
// A head's TX targets are cacheable too: the gate evaluates heads before
// any of the rule's own writes, and does not write the transaction's TX.
func shareTargets(l *level, slots map[string]*target, head bool) {
	for i, t := range l.targets {
		t.slot = -1
		if !cacheable(t.v) && !(head && t.v == variables.TX) {
			continue
		}
		k := fmt.Sprintf("%d|%s|%v|%t", t.v, t.key, t.keyRx, t.count)
		for _, e := range t.exceptions {
			k += fmt.Sprintf("|!%s%v", e.key, e.rx)
		}
		if s, ok := slots[k]; ok {
			l.targets[i] = s
			continue
		}
		t.slot = len(slots)
		t.invariant = invariantVariables[t.v]
		slots[k] = t
		if len(t.exceptions) > 0 || t.count {
			// The selection before exceptions and counting, shared.
			bk := fmt.Sprintf("%d|%s|%v|%t", t.v, t.key, t.keyRx, false)
			b, ok := slots[bk]
			if !ok {
				b = &target{v: t.v, key: t.key, keyRx: t.keyRx, slot: len(slots), invariant: t.invariant}
				slots[bk] = b
			}
			t.base = b
		}
	}
}

// invariantVariables are set before phase 1 and never change after.
var invariantVariables = map[variables.RuleVariable]bool{
	variables.RequestHeaders: true, variables.RequestHeadersNames: true,
	variables.RequestCookies: true, variables.RequestCookiesNames: true,
	variables.RequestURI: true, variables.RequestURIRaw: true, variables.RequestLine: true,
	variables.RequestMethod: true, variables.RequestProtocol: true,
	variables.RequestFilename: true, variables.RequestBasename: true, variables.QueryString: true,
	variables.ArgsGet: true, variables.ArgsGetNames: true,
	variables.RemoteAddr: true, variables.RemotePort: true,
}

// cacheable reports whether a variable's values stay the same while the
// gate evaluates a phase.
func cacheable(v variables.RuleVariable) bool {
	switch v {
	case variables.TX, variables.MatchedVar, variables.MatchedVars, variables.MatchedVarName, variables.MatchedVarsNames, variables.Rule:
		return false
	}
	return true
}

func caseSensitive(v variables.RuleVariable) bool {
	switch v {
	case variables.Args, variables.ArgsNames, variables.ArgsGet, variables.ArgsPost, variables.ArgsGetNames, variables.ArgsPostNames:
		return true
	}
	return false
}

func newTarget(v variables.RuleVariable, key string, count bool) (*target, error) {
	t := &target{v: v, count: count}
	if len(key) >= 2 && key[0] == '/' && key[len(key)-1] == '/' && v != variables.XML && v != variables.JSON {
		rx := key[1 : len(key)-1]
		if !caseSensitive(v) {
			rx = strings.ToLower(rx)
		}
		re, err := regexp.Compile(rx)
		if err != nil {
			return nil, fmt.Errorf("variable key %s: %w", key, err)
		}
		t.keyRx = re
		return t, nil
	}
	if !caseSensitive(v) {
		key = strings.ToLower(key)
	}
	t.key = key
	return t, nil
}

func newException(v variables.RuleVariable, key string) (exception, error) {
	if len(key) >= 2 && key[0] == '/' && key[len(key)-1] == '/' {
		rx := key[1 : len(key)-1]
		if !caseSensitive(v) {
			rx = strings.ToLower(rx)
		}
		re, err := regexp.Compile(rx)
		if err != nil {
			return exception{}, fmt.Errorf("variable exception %s: %w", key, err)
		}
		return exception{rx: re}, nil
	}
	return exception{key: key, lkey: strings.ToLower(key)}, nil
}

// addUpdates applies a SecRuleUpdateTargetById list to a head level: only
// exclusions ("!VAR:key") are applied; added targets make the rule
// unsupported.
func addUpdates(l *level, list string) error {
	vars, err := parseVars(list)
	if err != nil {
		return err
	}
	for _, rv := range vars {
		if !rv.negation {
			return fmt.Errorf("adding target %s is not supported", rv.name)
		}
		v, err := variables.Parse(rv.name)
		if err != nil {
			return err
		}
		ex, err := newException(v, rv.key)
		if err != nil {
			return err
		}
		for i, t := range l.targets {
			if t.v == v {
				c := *t
				c.exceptions = append(slices.Clip(t.exceptions), ex)
				l.targets[i] = &c
			}
		}
	}
	return nil
}

func newSetvar(s string) (setvar, error) {
	del := strings.HasPrefix(s, "!")
	s = strings.TrimPrefix(s, "!")
	k, v, _ := strings.Cut(s, "=")
	col, key, ok := strings.Cut(k, ".")
	if !ok || !strings.EqualFold(col, "tx") {
		return setvar{}, fmt.Errorf("setvar %q: only tx is supported", s)
	}
	km, err := macro.NewMacro(key)
	if err != nil {
		return setvar{}, fmt.Errorf("setvar %q: %w", s, err)
	}
	sv := setvar{key: km, del: del}
	if v != "" {
		if sv.value, err = macro.NewMacro(v); err != nil {
			return setvar{}, fmt.Errorf("setvar %q: %w", s, err)
		}
	}
	return sv, nil
}

// macroOperators expand macros in their argument at evaluation (Coraza's
// operators that take a macro.Macro).
var macroOperators = map[string]bool{
	"beginsWith": true, "contains": true, "endsWith": true, "eq": true, "ge": true, "gt": true,
	"le": true, "lt": true, "streq": true, "strmatch": true, "within": true,
}

// compileOperator splits "!@name arg" and compiles it.
func (p *Program) compileOperator(l *level, op string, rxs map[string]*pattern, dir fs.FS) error {
	switch {
	case op == "" || op[0] != '@' && op[0] != '!':
		op = "@rx " + op
	case op == "!":
		op = "!@rx"
	case len(op) > 1 && op[0] == '!' && op[1] != '@':
		op = "!@rx " + op[1:]
	}
	nameRaw, arg, _ := strings.Cut(op, " ")
	name := strings.TrimSpace(nameRaw)
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(name, "!") {
		l.negate = true
		name = name[1:]
	}
	name = strings.TrimPrefix(name, "@")
	if name == "tgrx" {
		name = "rx"
	}
	l.opName, l.arg = name, arg
	if macroOperators[name] && strings.Contains(arg, "%{") {
		m, err := macro.NewMacro(arg)
		if err != nil {
			return fmt.Errorf("operator %s %q: %w", name, arg, err)
		}
		l.argMacro = m
		return nil
	}
	if name == "rx" {
		pat, ok := rxs[arg]
		if !ok {
			var err error
			if pat, err = compilePattern(arg); err != nil {
				return err
			}
			rxs[arg] = pat
		}
		l.pat = pat
		return nil
	}
	o, err := ruleops.NewOperator(name, arg, dir)
	if err != nil {
		return fmt.Errorf("operator %s: %w", name, err)
	}
	l.op = o
	if phrases, ok := ruleops.Phrases(o); ok && len(phrases) > 0 && !slices.Contains(phrases, "") {
		expr := phraseExpr(phrases)
		pat, ok := rxs[pmKey+expr]
		if !ok {
			pat = &pattern{expr: expr, setIdx: [nSetKinds]int{-1, -1, -1, -1}, pm: true}
			rxs[pmKey+expr] = pat
		}
		l.pmPat = pat
		pat.inKind[setPM] = true
	}
	return nil
}

// pmKey prefixes the prefilter patterns of @pm operators among the @rx ones.
const pmKey = "\x00pm:"

// phraseExpr is a Latin-1 regular expression matching any of the phrases
// anywhere, letters in any case.
func phraseExpr(phrases []string) string {
	var b strings.Builder
	b.WriteString("(?i)(?:")
	for i, p := range phrases {
		if i > 0 {
			b.WriteByte('|')
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, `\x{%02x}`, c)
			}
		}
	}
	b.WriteByte(')')
	return b.String()
}

// compileSet puts the patterns into RE2 sets (see Program.sets), each
// scanned once per distinct transformed value. A set RE2 refuses leaves its
// patterns to be answered one by one.
func (p *Program) compileSet(rxs map[string]*pattern) error {
	keys := make([]string, 0, len(rxs))
	for k := range rxs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var exprs [nSetKinds][]string
	for _, k := range keys {
		pat := rxs[k]
		if !pat.pm {
			p.pats = append(p.pats, pat)
		}
		if !pat.pm && pat.binary == nil && (strings.Contains(k, `\p`) || strings.Contains(k, `\P`)) {
			continue // Unicode classes: RE2's tables may differ from Go's
		}
		for kind := range nSetKinds {
			if !pat.inKind[kind] {
				continue
			}
			pat.setIdx[kind] = len(exprs[kind])
			exprs[kind] = append(exprs[kind], pat.expr)
			p.sets[kind].pats = append(p.sets[kind].pats, pat)
		}
	}
	for kind := range nSetKinds {
		p.sets[kind].compile(kind, exprs[kind], kind == setLatin1 || kind == setPM)
	}
	return nil
}

func (ps *patternSet) compile(kind int, exprs []string, latin1 bool) {
	ps.memo.limit = scanEntries
	if len(exprs) == 0 {
		return
	}
	set, err := experimental.CompileSetWithOptions(exprs, experimental.CompileOptions{MaxMem: 256 << 20, Latin1: latin1})
	if err != nil {
		for _, pat := range ps.pats {
			pat.setIdx[kind] = -1
		}
		ps.pats = nil
		return
	}
	ps.set = set
	if ps.lits = newLiteralFilter(exprs, latin1); ps.lits != nil {
		ps.none = make([]uint64, (len(exprs)+63)/64)
	}
	ps.alpha = make([][]int, len(alphabets))
	for k := range alphabets {
		cands := []int{}
		for i, pat := range ps.pats {
			if mayMatchOver(pat.expr, &alphabets[k]) {
				cands = append(cands, i)
			}
		}
		answerable := len(cands) <= maxAlphaCandidates
		for _, i := range cands {
			answerable = answerable && (ps.pats[i].std != nil || ps.pats[i].binary != nil)
		}
		if answerable {
			ps.alpha[k] = cands
		}
	}
}

// txReads returns the lower-case TX variable names (and name prefixes of
// regular-expression selections, ending in '*') that rules read, with the
// index of the group reading them.
func txReads(groups [][]*parsedRule) map[string][]int {
	reads := map[string][]int{}
	macroRe := regexp.MustCompile(`(?i)%\{tx\.([^}]+)\}`)
	for gi, g := range groups {
		for _, pr := range g {
			vars, _ := parseVars(pr.vars)
			for _, v := range vars {
				if v.name != "TX" || v.negation {
					continue
				}
				k := strings.ToLower(v.key)
				reads[k] = append(reads[k], gi)
			}
			texts := []string{pr.op}
			for _, a := range pr.actions {
				texts = append(texts, a.value)
			}
			for _, t := range texts {
				for _, m := range macroRe.FindAllStringSubmatch(t, -1) {
					reads[strings.ToLower(m[1])] = append(reads[strings.ToLower(m[1])], gi)
				}
			}
		}
	}
	return reads
}

// partialEffects reports whether a non-final chain level (of the rule in
// group gi) leaves state that another rule reads when it matches without
// its chain: a ctl or similar action, or a setvar of a TX variable another
// rule reads. (Captures, TX:0-9, are read by CRS only within the chain
// that captured them.)
func partialEffects(pr *parsedRule, gi int, reads map[string][]int) bool {
	for _, a := range pr.actions {
		switch a.name {
		case "ctl", "exec", "initcol", "setenv", "expirevar", "deprecatevar", "setsid", "setuid", "setrsc":
			return true
		case "setvar":
			k, _, _ := strings.Cut(strings.TrimPrefix(a.value, "!"), "=")
			_, name, _ := strings.Cut(strings.ToLower(k), ".")
			static, _, dynamic := strings.Cut(name, "%{")
			for rk, groups := range reads {
				if !readHits(rk, name, static, dynamic) {
					continue
				}
				for _, g := range groups {
					if g != gi {
						return true
					}
				}
			}
		}
	}
	return false
}

// readHits reports whether a read of TX key rk (a name, or "/regex/") may
// see a write of name, whose static prefix is static when dynamic.
func readHits(rk, name, static string, dynamic bool) bool {
	if !strings.HasPrefix(rk, "/") {
		return rk == name || (dynamic && strings.HasPrefix(rk, static))
	}
	re, err := regexp.Compile(strings.Trim(rk, "/"))
	if err != nil {
		return true
	}
	if re.MatchString(name) || re.MatchString(static) {
		return true
	}
	// The regex's literal prefix against the write's static prefix.
	lit := strings.TrimPrefix(strings.Trim(rk, "/"), "^")
	if i := strings.IndexAny(lit, `\.+*?()[]{}|$^`); i >= 0 {
		lit = lit[:i]
	}
	return dynamic && (strings.HasPrefix(lit, static) || strings.HasPrefix(static, lit))
}

// newOperator builds a non-@rx operator for an expanded argument.
func newOperator(name, arg string, p *Program) (ruleops.Operator, error) {
	return ruleops.NewOperator(name, arg, p.root)
}

// subRoot is the directory of a rule file, where its data files are found.
func subRoot(root fs.FS, file string) fs.FS {
	dir := path.Dir(file)
	if dir == "." || file == "config" {
		return root
	}
	sub, err := fs.Sub(root, dir)
	if err != nil {
		return root
	}
	return sub
}

// headPlan is how the static heads of one slot are evaluated on a value:
// the @rx heads a set answers, grouped by transformation chain and set
// (one transformation and one scan answer each group: a head's result is
// its pattern's bit, negated or not), and the other heads one by one.
type headPlan struct {
	groups []headGroup
	others []*level
}

// headGroup is the @rx heads of one slot that read the value through the
// same chain and are answered by the same set.
type headGroup struct {
	chain, kind int
	heads       []*level
	mask        []uint64 // the heads' bits (level.hb)
}

// compileHeadPlans groups the heads of every phase and slot (after
// compileSet: a head is grouped only when its pattern is in a set).
func (p *Program) compileHeadPlans() {
	for phase := 1; phase <= 2; phase++ {
		p.headPlan[phase] = make([]headPlan, len(p.targets))
		for slot, heads := range p.heads[phase] {
			plan := &p.headPlan[phase][slot]
			for _, h := range heads {
				if h.argMacro != nil || h.pat == nil || h.multiMatch || h.pat.setIdx[h.setKind] < 0 || p.sets[h.setKind].set == nil {
					plan.others = append(plan.others, h)
					continue
				}
				gi := slices.IndexFunc(plan.groups, func(g headGroup) bool { return g.chain == h.chain && g.kind == h.setKind })
				if gi < 0 {
					gi = len(plan.groups)
					plan.groups = append(plan.groups, headGroup{chain: h.chain, kind: h.setKind, mask: make([]uint64, (p.nHeads+63)/64)})
				}
				g := &plan.groups[gi]
				g.heads = append(g.heads, h)
				g.mask[h.hb/64] |= 1 << (h.hb % 64)
			}
		}
	}
}
