//go:build linux && amd64

package command_test

import (
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// TestDetectorThroughConsole: a drift finding in prevent mode goes from the
// real defender (launcher and sidecar) to the console with its detector,
// technique, process tree and hash; the exec did not happen.
func TestDetectorThroughConsole(t *testing.T) {
	rule := seedsRule(policy.EffectPrevent)
	rule.Detectors = map[string]policy.Effect{"drift": policy.EffectPrevent, "tempdir-exec": policy.EffectOff}
	eachMechanism(t, &policy.Policy{Revision: 1, Runtime: []policy.RuntimeRule{rule}}, func(t *testing.T, e *env) {
		r := e.launch(t, "cp /bin/true ./fresh && ./fresh; echo fresh=$?\n/bin/true; echo image=$?\n")
		if !strings.Contains(r.stdout, "fresh=126") || !strings.Contains(r.stdout, "image=0") {
			t.Errorf("stdout %q: want the drifted exec refused and /bin/true run", r.stdout)
		}
		audits := e.console.WaitAudits(20*time.Second, func(as []api.Audit) bool {
			for _, a := range as {
				if a.Kind == api.AuditThreat {
					return true
				}
			}
			return false
		})
		var got []api.Audit
		for _, a := range audits {
			if a.Kind == api.AuditThreat {
				got = append(got, a)
			}
		}
		if len(got) != 1 {
			t.Fatalf("threat audits %+v, want one (drift)", got)
		}
		a := got[0]
		if a.Detector != "drift" || a.Technique != "T1105" || a.Effect != policy.EffectPrevent || a.Rule != rule.Name ||
			a.Container != "twistlock-fargate-task" || !strings.HasSuffix(a.Message, "; blocked by detector drift") {
			t.Errorf("audit %+v", a)
		}
		if a.Process == nil || !strings.HasSuffix(a.Process.Path, "/fresh") || len(a.Process.SHA256) != 64 || len(a.Process.Tree) < 2 {
			t.Errorf("process detail %+v: want the file, its hash and the tree", a.Process)
		}
	})
}
