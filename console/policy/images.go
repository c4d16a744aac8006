package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ImageRule is an alert rule for the images running in tasks: the console
// evaluates the first rule whose scope matches a task container's inventory
// (task family, container and image patterns) and writes an alert audit for
// each finding the rule alerts on. Nothing is blocked at runtime, so the
// only actions are ignore and alert.
type ImageRule struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
	// Vulnerabilities uses AlertThreshold, OnlyFixed and Exceptions; block
	// thresholds and grace days belong to the CI gate and are refused here.
	Vulnerabilities VulnRule `json:"vulnerabilities"`
	// Compliance decides each check of the curated Fargate set
	// (FargateChecks); checks outside it are ignored unless named in Checks.
	Compliance ComplianceRule `json:"compliance"`
}

// FargateChecks is the curated compliance set for running Fargate
// containers: the image checks a defender can evaluate from inside a running
// container, and that mean something there. It is the default set of every
// image rule.
var FargateChecks = []string{
	"TG-IMG-001", // runs as root
	"TG-IMG-003", // secret in the environment
	"TG-IMG-004", // private key or credentials file
	"TG-IMG-005", // setuid/setgid files
	"TG-IMG-006", // package-manager caches
	"TG-IMG-009", // sshd installed
	"TG-IMG-010", // world-writable system files
}

// FargateLeftOut names the image checks left out of FargateChecks, with why.
var FargateLeftOut = map[string]string{
	"TG-IMG-002": "HEALTHCHECK is an image-build concern; Fargate uses the task definition's healthCheck",
	"TG-IMG-007": "ADD of a remote URL is visible only in the image history, which CI checks",
	"TG-IMG-008": "the latest tag is a reference concern, which CI checks; a running task is pinned to a digest",
}

// ImagesFor returns the first image rule whose scope matches id, or nil.
// The image patterns match the reference with or without its tag.
func (p *Policy) ImagesFor(id Identity) *ImageRule {
	if p == nil {
		return nil
	}
	for i := range p.Images {
		s := p.Images[i].Scope
		if matchAny(s.Tasks, id.TaskFamily) && matchAny(s.Containers, id.Container) &&
			(matchAny(s.Images, id.Image) || matchAny(s.Images, repository(id.Image))) {
			return &p.Images[i]
		}
	}
	return nil
}

// ci is the rule as a CI rule, so that the decisions are the CI gate's.
func (r *ImageRule) ci() *CIRule {
	return &CIRule{Name: r.Name, Scope: r.Scope, Vulnerabilities: r.Vulnerabilities, Compliance: r.Compliance}
}

// DecideVulnerability decides one vulnerability finding at time now: alert
// at or above the alert threshold, else ignore; exceptions that have not
// expired and only-fixed ignore.
func (r *ImageRule) DecideVulnerability(f VulnFinding, now time.Time) Verdict {
	return r.ci().DecideVulnerability(f, now, nil)
}

// DecideCompliance decides one compliance finding at time now: a check
// outside FargateChecks and the rule's own custom checks is ignored unless
// the rule names it in Checks.
func (r *ImageRule) DecideCompliance(f ComplianceFinding, now time.Time) Verdict {
	if _, named := r.Compliance.Checks[f.CheckID]; !named && !slices.Contains(FargateChecks, f.CheckID) && !r.hasCustom(f.CheckID) {
		return Verdict{Action: ActionIgnore, Reason: fmt.Sprintf("%s is not in the Fargate compliance set", f.CheckID)}
	}
	return r.ci().DecideCompliance(f, now, nil)
}

func (r *ImageRule) hasCustom(id string) bool {
	for _, c := range r.Compliance.Custom {
		if c.ID == id {
			return true
		}
	}
	return false
}

func validateImages(add addFunc, rules []ImageRule) {
	names := map[string]bool{}
	for i, r := range rules {
		f := fmt.Sprintf("images[%d]", i)
		checkName(add, f, r.Name, names)
		checkScope(add, f+".scope", r.Scope)
		v := r.Vulnerabilities
		if !ValidSeverity(v.AlertThreshold) {
			add(f+".vulnerabilities.alertThreshold", "unknown severity %q (use LOW, MEDIUM, HIGH or CRITICAL)", v.AlertThreshold)
		}
		if v.BlockThreshold != "" {
			add(f+".vulnerabilities.blockThreshold", "running images are never blocked: use alertThreshold")
		}
		if v.GraceDays != 0 {
			add(f+".vulnerabilities.graceDays", "applies to block thresholds, which image rules do not have")
		}
		checkExceptions(add, f+".vulnerabilities.exceptions", v.Exceptions)
		c := r.Compliance
		if c.Default != "" && c.Default != ActionIgnore && c.Default != ActionAlert {
			add(f+".compliance.default", "unknown action %q (use ignore or alert)", c.Default)
		}
		for id, a := range c.Checks {
			if a != ActionIgnore && a != ActionAlert {
				add(fmt.Sprintf("%s.compliance.checks.%s", f, id), "unknown action %q (use ignore or alert)", a)
			}
			if why, ok := FargateLeftOut[strings.ToUpper(id)]; ok && a == ActionAlert {
				add(fmt.Sprintf("%s.compliance.checks.%s", f, id), "cannot apply to a running Fargate container: %s", why)
			}
		}
		checkExceptions(add, f+".compliance.exceptions", c.Exceptions)
		// Custom checks run in the defender's walk of the running
		// container (files and its real environment); they only alert.
		checkCustom(add, f+".compliance.custom", c.Custom)
	}
}
