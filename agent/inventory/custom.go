package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/taskguard/taskguard/console/policy"
)

// customFor returns the custom checks of the first image rule of p that
// matches id, and a hash of them for the skip key ("" when there are none).
func customFor(p *policy.Policy, id policy.Identity) ([]policy.CustomCheck, string) {
	r := p.ImagesFor(id)
	if r == nil || len(r.Compliance.Custom) == 0 {
		return nil, ""
	}
	b, _ := json.Marshal(r.Compliance.Custom)
	h := sha256.Sum256(b)
	return r.Compliance.Custom, "custom:" + hex.EncodeToString(h[:8])
}
