package bodyproc

import (
	"testing"

	"github.com/taskguard/taskguard/agent/waf/internal/ruleops"
)

// TestCorazaVersion ties the copies to the release ruleops's version test
// pins go.mod to: a Coraza upgrade must compare these copies too.
func TestCorazaVersion(t *testing.T) {
	if CorazaVersion != ruleops.CorazaVersion {
		t.Fatalf("body processors copied from Coraza %s, ruleops from %s: compare the copies with the release go.mod requires", CorazaVersion, ruleops.CorazaVersion)
	}
}
