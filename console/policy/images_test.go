package policy

import (
	"slices"
	"testing"

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
