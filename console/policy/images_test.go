package policy

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/scanners/compliance"
)

// TestImagesForFirstMatch: the first image rule whose task, container and
// image patterns all match applies; image patterns match with or without
// the tag.
func TestImagesForFirstMatch(t *testing.T) {
	p := &Policy{Images: []ImageRule{
		{Name: "web", Scope: Scope{Tasks: []string{"shop-*"}, Containers: []string{"web"}}},
		{Name: "nginx", Scope: Scope{Images: []string{"docker.io/library/nginx"}}},
		{Name: "rest", Scope: Scope{Tasks: []string{"*"}}},
	}}
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{TaskFamily: "shop-1", Container: "web", Image: "docker.io/library/nginx:1.27"}, "web"},
		{Identity{TaskFamily: "shop-1", Container: "api", Image: "docker.io/library/nginx:1.27"}, "nginx"},
		{Identity{TaskFamily: "bank", Container: "api", Image: "bank/api:3"}, "rest"},
	}
	for _, tt := range tests {
		r := p.ImagesFor(tt.id)
		if r == nil || r.Name != tt.want {
			t.Errorf("%+v: got %v, want %s", tt.id, r, tt.want)
		}
	}
	p.Images = p.Images[:2]
	if r := p.ImagesFor(Identity{TaskFamily: "bank", Container: "api", Image: "bank/api:3"}); r != nil {
		t.Errorf("no rule should match, got %s", r.Name)
	}
	if (*Policy)(nil).ImagesFor(Identity{}) != nil {
		t.Error("a nil policy matched")
	}
}

// TestFargateSetCoversImageChecks: every image check is either in the
// curated Fargate set or left out with a reason, never both.
func TestFargateSetCoversImageChecks(t *testing.T) {
	known := map[string]bool{}
	for _, c := range compliance.ImageChecks() {
		id := c.ID
		known[id] = true
		_, out := FargateLeftOut[id]
		in := slices.Contains(FargateChecks, id)
		if in == out {
			t.Errorf("%s: in the Fargate set %v, left out %v; want exactly one", id, in, out)
		}
	}
	for _, id := range FargateChecks {
		if !known[id] {
			t.Errorf("the Fargate set names %s, which is not an image check", id)
		}
	}
}

// FuzzImageRule: any image rule a client sends is refused with field errors
// or, when valid, decides findings without panicking.
func FuzzImageRule(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","scope":{"tasks":["shop-*"],"images":["x/*"]},"vulnerabilities":{"alertThreshold":"HIGH","onlyFixed":true,"exceptions":[{"id":"CVE-1","reason":"r","expires":"2026-12-31"}]}}`,
		`{"name":"a","compliance":{"default":"ignore","checks":{"TG-IMG-001":"alert"},"exceptions":[{"id":"TG-IMG-009","reason":"r"}]}}`,
		`{"name":"a","vulnerabilities":{"blockThreshold":"LOW","graceDays":-1}}`,
		`{"name":"a","compliance":{"custom":[{"id":"X","title":"t","severity":"LOW","fileExists":"/a"}]}}`,
		`{"scope":{"images":["["]}}`, `{}`, `null`, `[]`, `{"vulnerabilities":{"exceptions":[{"expires":"31/12"}]}}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r ImageRule
		if json.Unmarshal(b, &r) != nil {
			return
		}
		p := &Policy{Images: []ImageRule{r}}
		if err := p.Validate(); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("validation error without a field: %v", err)
			}
			return
		}
		rule := p.ImagesFor(Identity{TaskFamily: "shop-web", Container: "web", Image: "x/y:1"})
		if rule == nil {
			return
		}
		for _, sev := range []string{"", "LOW", "CRITICAL", "weird"} {
			if v := rule.DecideVulnerability(VulnFinding{ID: "CVE-1", Package: "p", Severity: sev}, now); v.Action == ActionBlock {
				t.Fatalf("an image rule blocked: %+v", v)
			}
			if v := rule.DecideCompliance(ComplianceFinding{CheckID: "TG-IMG-001", Severity: sev}, now); v.Action == ActionBlock {
				t.Fatalf("an image rule blocked a check: %+v", v)
			}
		}
	})
}

// TestImageRuleCustomChecks: image rules accept custom checks (validated
// like a CI rule's) and alert on their failures, never block.
func TestImageRuleCustomChecks(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := ImageRule{Name: "a", Compliance: ComplianceRule{Custom: []CustomCheck{
		{ID: "ACME-1", Title: "t", Severity: "HIGH", FileAbsent: "/opt/debug/*"},
	}}}
	if err := (&Policy{Images: []ImageRule{r}}).Validate(); err != nil {
		t.Fatalf("valid custom check refused: %v", err)
	}
	if v := r.DecideCompliance(ComplianceFinding{CheckID: "ACME-1", Severity: "HIGH"}, now); v.Action != ActionAlert {
		t.Errorf("custom check failure: %+v, want alert", v)
	}
	if v := r.DecideCompliance(ComplianceFinding{CheckID: "OTHER-1", Severity: "HIGH"}, now); v.Action != ActionIgnore {
		t.Errorf("a check that is not the rule's: %+v, want ignore", v)
	}
	bad := r
	bad.Compliance.Custom = []CustomCheck{{ID: "ACME-1", Title: "t", Severity: "HIGH"}}
	var fe *FieldError
	if err := (&Policy{Images: []ImageRule{bad}}).Validate(); !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "images[0].compliance.custom[0]") {
		t.Errorf("custom check without condition: %v", err)
	}
}
