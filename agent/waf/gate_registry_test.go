package waf

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"weak"

	"github.com/taskguard/taskguard/agent/waf/internal/gate"
	"github.com/taskguard/taskguard/console/policy"
)

// keyOf finds the registry key of a live program.
func keyOf(p *gate.Program) string {
	key := ""
	gates.Range(func(k, v any) bool {
		if v.(weak.Pointer[gate.Program]).Value() == p {
			key = k.(string)
			return false
		}
		return true
	})
	return key
}

// TestGateProgramsFreed changes the WAF rule's configuration the way policy
// edits do (another paranoia level, another inspection limit) and drops the
// engines: their gate programs (15-35 MiB each with their memos) must be
// freed, and their registry entries removed, while an engine still in use
// keeps its program and shares it with a new engine of the same
// configuration. A registry that keeps every program fails.
func TestGateProgramsFreed(t *testing.T) {
	r := rule(8081, allProtections(policy.EffectPrevent))
	kept, err := compileEngine(r, 1, DefaultInspectionLimit+100, true)
	if err != nil {
		t.Fatal(err)
	}
	const edits = 4
	var dropped []weak.Pointer[engine]
	var programs []weak.Pointer[gate.Program]
	var keys []string
	for i := range edits {
		e, err := compileEngine(r, 1+i%4, DefaultInspectionLimit+101+i, true)
		if err != nil {
			t.Fatal(err)
		}
		if e.gate == kept.gate {
			t.Fatal("two configurations share one gate program")
		}
		key := keyOf(e.gate)
		if key == "" {
			t.Fatal("the engine's gate program is not in the registry")
		}
		keys = append(keys, key)
		dropped = append(dropped, weak.Make(e))
		programs = append(programs, weak.Make(e.gate))
	}
	freed := func() bool {
		for i, p := range programs {
			if p.Value() != nil || liveGate(keys[i]) != nil {
				return false
			}
			if _, ok := gates.Load(keys[i]); ok {
				return false
			}
		}
		return true
	}
	// Cleanups run on their own goroutine after a collection: collect
	// until they have (a bounded number of times, no sleeping).
	for i := 0; i < 50 && !freed(); i++ {
		runtime.GC()
		runtime.Gosched()
	}
	for i := range edits {
		if dropped[i].Value() != nil {
			t.Fatalf("engine %d is still referenced: the test holds it", i)
		}
		if programs[i].Value() != nil {
			t.Errorf("the gate program of dropped configuration %d was not freed: the registry keeps it", i)
		}
		if _, ok := gates.Load(keys[i]); ok {
			t.Errorf("the registry still has an entry for dropped configuration %d", i)
		}
	}
	again, err := compileEngine(r, 1, DefaultInspectionLimit+100, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.gate != kept.gate {
		t.Error("a new engine of a configuration in use compiled a second gate program instead of sharing it")
	}
	// The kept engine still inspects with its gate: a benign request is
	// proven clean in both phases, an attack is blocked.
	benign := httptest.NewRequest(http.MethodGet, "http://shop.example.com/search?q=blue+shoes", nil)
	if v := kept.inspect(benign, nil, false); v.effect != policy.EffectDisable || v.gated != 2 {
		t.Errorf("benign request: effect %q, gate answered %d phases; want no effect, 2", v.effect, v.gated)
	}
	attack := httptest.NewRequest(http.MethodGet, "http://shop.example.com/search?q=1'+union+all+select+password+from+users--", nil)
	if v := kept.inspect(attack, nil, false); v.effect != policy.EffectPrevent {
		t.Errorf("SQL injection: effect %q, want prevent", v.effect)
	}
	runtime.KeepAlive(kept)
	runtime.KeepAlive(again)
}

// TestSetRuleFreesOldGate edits the rule of a running proxy as a policy
// change does (a new inspection limit): the old configuration's gate
// program must be freed once the new rule is in place.
func TestSetRuleFreesOldGate(t *testing.T) {
	r := rule(8081, allProtections(policy.EffectPrevent))
	r.BodyLimit = DefaultInspectionLimit + 200
	p, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	old := weak.Make(p.eng.Load().gate)
	oldKey := keyOf(old.Value())
	r.BodyLimit++
	if err := p.SetRule(r); err != nil {
		t.Fatal(err)
	}
	cur := p.eng.Load().gate
	if cur == nil || cur == old.Value() {
		t.Fatal("the new rule did not get a gate program of its own")
	}
	gone := func() bool {
		_, ok := gates.Load(oldKey)
		return old.Value() == nil && !ok
	}
	for i := 0; i < 50 && !gone(); i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if old.Value() != nil {
		t.Error("the replaced rule's gate program was not freed")
	}
	if _, ok := gates.Load(oldKey); ok {
		t.Error("the registry still has the replaced rule's entry")
	}
}
