package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/scanners/compliance"
)

// CustomChecks turns an image rule's custom checks into the scanner's. The
// policy was validated, so a bad regular expression is an error here.
func CustomChecks(in []policy.CustomCheck) ([]compliance.CustomCheck, error) {
	out := make([]compliance.CustomCheck, 0, len(in))
	for _, c := range in {
		cc := compliance.CustomCheck{
			Check: compliance.Check{ID: c.ID, Family: compliance.FamilyImage, Title: c.Title,
				Severity: strings.ToUpper(c.Severity), Remediation: c.Remediation},
			FileExists: c.FileExists, FileAbsent: c.FileAbsent,
		}
		if c.Env != nil {
			cc.EnvName = c.Env.Name
			if c.Env.Match != "" {
				re, err := regexp.Compile(c.Env.Match)
				if err != nil {
					return nil, fmt.Errorf("custom check %s: %w", c.ID, err)
				}
				cc.EnvMatch = re
			}
		}
		out = append(out, cc)
	}
	return out, nil
}

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
