package launcher

import (
	"testing"

	"github.com/taskguard/taskguard/agent/detect"
	"github.com/taskguard/taskguard/console/policy"
)

// TestSendsNeeded: sends may go unstopped only for a rule with no domain
// rule and every detector off; any DNS rule, any detector on (each one
// alone), or no rule at all keeps them stopped.
func TestSendsNeeded(t *testing.T) {
	h := &handler{det: &detect.Engine{}}
	allOff := func() map[string]policy.Effect {
		m := map[string]policy.Effect{}
		for _, d := range detect.All {
			m[d.ID] = policy.EffectOff
		}
		return m
	}
	quiet := &policy.RuntimeRule{Detectors: allOff()}
	quiet.Network.DeniedOutbound = []policy.Destination{{CIDR: "192.0.2.0/24"}}
	if h.sendsNeeded(quiet) {
		t.Errorf("a rule with no domain rules and every detector off needs sends")
	}
	if !h.sendsNeeded(nil) {
		t.Errorf("no rule: sends not needed, want needed (nothing known)")
	}
	if !h.sendsNeeded(&policy.RuntimeRule{}) {
		t.Errorf("a rule with the detectors on by default: sends not needed")
	}
	denied := &policy.RuntimeRule{Detectors: allOff()}
	denied.Network.DeniedDomains = []string{"yahoo.com"}
	allowed := &policy.RuntimeRule{Detectors: allOff()}
	allowed.Network.AllowedDomains = []string{"example.com"}
	for name, r := range map[string]*policy.RuntimeRule{"deniedDomains": denied, "allowedDomains": allowed} {
		if !h.sendsNeeded(r) {
			t.Errorf("%s: sends not needed", name)
		}
	}
	for _, d := range detect.All {
		r := &policy.RuntimeRule{Detectors: allOff()}
		r.Detectors[d.ID] = policy.EffectAlert
		if !h.sendsNeeded(r) {
			t.Errorf("detector %s on: sends not needed", d.ID)
		}
	}
}
