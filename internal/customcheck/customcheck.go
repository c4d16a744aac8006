// Package customcheck turns the custom compliance checks of a policy (CI
// rules and image rules, console/policy) into the scanner's checks
// (scanners/compliance). It sits between the two because scanners never
// import the console and the policy model imports no scanner.
package customcheck

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/scanners/compliance"
)

// Compile converts in. The policy was validated, so a bad regular expression
// is an error here.
func Compile(in []policy.CustomCheck) ([]compliance.CustomCheck, error) {
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
