package waf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/taskguard/taskguard/agent/waf/internal/gate"
)

// The gate: two rules placed before the rule families, one per request
// phase, whose operator proves with a compiled copy of the same rules
// (internal/gate) that none of them can match the request so far. When it
// can, the rule matches and skips to gateEnd: Coraza does not evaluate the
// families' rules one by one. When it cannot decide, or a rule may match,
// Coraza evaluates every rule as usual, so every verdict with a match is
// Coraza's. engine.inspect asks the gate first on collections built
// without a transaction (direct.go), and creates one only when that fails.
const (
	gateOperator       = "tggate"
	gateKeyPlaceholder = "GATE-KEY"
	gateEnd            = "TASKGUARD-GATE-END"
)

// gateIDs are the gate rules' IDs (phase 1, phase 2), outside CRS's ranges;
// the rules that skip one file have IDs from fileSkipID on.
var gateIDs = []int{9000001, 9000002}

const (
	fileSkipID   = 9000100
	fileFlagBase = "taskguard_skip_"
)

// fileFlag is the TX variable through which the gate lets Coraza skip one
// rule file (the phase is appended: _p1, _p2).
func fileFlag(file string) string {
	return fileFlagBase + file[len("REQUEST-"):len("REQUEST-")+3]
}

// gates holds the compiled programs by key (a digest of the configuration),
// as weak.Pointer[gate.Program]: engines of one configuration share its
// program while any of them lives (the engine and its gate operators hold
// it), and a program no engine uses any more is freed with its entry. A
// sidecar gets a new configuration with every policy change of its WAF
// rule, and a program with its memos is 15-35 MiB: kept for ever, a few
// dozen edits would fill a Fargate task's memory.
var gates sync.Map

// liveGate returns the program stored under key, or nil when there is none
// or it was freed.
func liveGate(key string) *gate.Program {
	if wp, ok := gates.Load(key); ok {
		return wp.(weak.Pointer[gate.Program]).Value()
	}
	return nil
}

// storeGate stores prog under key unless a live program is there already,
// and returns the program stored. The entry is removed once the program
// is freed.
func storeGate(key string, prog *gate.Program) *gate.Program {
	wp := weak.Make(prog)
	old, loaded := gates.LoadOrStore(key, wp)
	for loaded {
		if p := old.(weak.Pointer[gate.Program]).Value(); p != nil {
			return p
		}
		if gates.CompareAndSwap(key, old, wp) {
			break
		}
		old, loaded = gates.LoadOrStore(key, wp)
	}
	runtime.AddCleanup(prog, func(key string) { gates.CompareAndDelete(key, wp) }, key)
	return prog
}

func init() {
	plugins.RegisterOperator(gateOperator, newGateOperator)
}

// registerGate compiles (once per configuration) the gate program of a
// configuration, and returns the configuration with the program's key in
// the gate rules, and the program.
func registerGate(config string) (string, *gate.Program, error) {
	sum := sha256.Sum256([]byte(config))
	key := hex.EncodeToString(sum[:12])
	config = strings.ReplaceAll(config, gateKeyPlaceholder, key)
	if p := liveGate(key); p != nil {
		return config, p, nil
	}
	flags := map[string]string{}
	for _, f := range Families {
		for _, file := range f.Files {
			flags["@owasp_crs/"+file] = fileFlag(file)
		}
	}
	var setupTX []string
	for _, line := range strings.Split(config, "\n") {
		if sv, ok := strings.CutPrefix(line, "# tgsetup: "); ok {
			k, _, _ := strings.Cut(sv, "=")
			setupTX = append(setupTX, strings.TrimPrefix(strings.ToLower(k), "tx."))
		}
	}
	prog, err := gate.Compile(crsFS, config, gate.Options{
		GateIDs: gateIDs, EndMarker: gateEnd, FileFlags: flags, FlagPrefix: fileFlagBase,
		SetupAction: "tgsetup", SetupTX: setupTX,
	})
	if err != nil {
		return "", nil, fmt.Errorf("compile gate: %w", err)
	}
	// The caller keeps the program (engine.gate) while Coraza parses the
	// configuration, so newGateOperator finds it alive.
	return config, storeGate(key, prog), nil
}

// gateOp is the gate rule's operator: it matches (and the rule skips the
// families) when the program proves the phase clean.
type gateOp struct {
	prog  *gate.Program
	phase int
}

func newGateOperator(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	key, phase, ok := strings.Cut(o.Arguments, " ")
	n, err := strconv.Atoi(phase)
	if !ok || err != nil || (n != 1 && n != 2) {
		return nil, fmt.Errorf("@%s %q: want KEY PHASE", gateOperator, o.Arguments)
	}
	prog := liveGate(key)
	if prog == nil {
		return nil, fmt.Errorf("@%s: no program %s", gateOperator, key)
	}
	return &gateOp{prog: prog, phase: n}, nil
}

// Evaluate answers whether the phase is clean. A panic in the gate is a bug
// in it, never a reason to lose a request: the gate then answers no, and
// Coraza evaluates every rule.
func (g *gateOp) Evaluate(tx plugintypes.TransactionState, _ string) (clean bool) {
	defer func() {
		if r := recover(); r != nil {
			gatePanics.Add(1)
			slog.Error("waf gate failed; evaluating every rule", "phase", g.phase, "panic", fmt.Sprint(r))
			clean = false
		}
	}()
	if req, ok := openGates.Load(tx.ID()); ok {
		return req.(*gate.Request).Clean(tx, g.phase)
	}
	return g.prog.Clean(tx, g.phase)
}

// openGates holds, by transaction ID, the gate state engine.inspect
// opened for a transaction, so that phase 2 reuses what phase 1 selected.
var openGates sync.Map

// openGate starts the gate state of a transaction; the returned function
// ends it (after the transaction's request phases).
func (e *engine) openGate(tx types.Transaction) func() {
	if e.gate == nil {
		return func() {}
	}
	req := e.gate.NewRequest()
	id := tx.ID()
	openGates.Store(id, req)
	return func() {
		openGates.Delete(id)
		req.Release()
	}
}

// gatePanics counts gate failures (tests check it stays zero).
var gatePanics atomic.Int64
