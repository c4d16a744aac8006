package sbom

import (
	"testing"

	"github.com/taskguard/taskguard/scanners/analyzer"
)

// TestPURLRPMArchAndModule keeps an rpm package's architecture and
// modularity label through a package URL (Rocky's advisories are per
// arch; modular packages are keyed by module), as Trivy writes them.
func TestPURLRPMArchAndModule(t *testing.T) {
	os := &analyzer.OS{Family: "alma", Name: "8.4"}
	p := analyzer.Package{Type: analyzer.TypeRPM, Name: "golang", Version: "1.15.13-1.module_el8.4.0+2519+614b07b8",
		Arch: "x86_64", Modularity: "go-toolset:rhel8:8040020210810210707:5081a262"}
	u := PURL(os, p)
	want := "pkg:rpm/alma/golang@1.15.13-1.module_el8.4.0%2B2519%2B614b07b8?arch=x86_64&distro=alma-8.4&modularitylabel=go-toolset:rhel8:8040020210810210707:5081a262"
	if u != want {
		t.Errorf("PURL\n got %s\nwant %s", u, want)
	}
	got, gotOS, ok, err := FromPURL(u)
	if err != nil || !ok || gotOS == nil || *gotOS != *os {
		t.Fatalf("FromPURL: %+v %v %v", gotOS, ok, err)
	}
	if got.Arch != p.Arch || got.Modularity != p.Modularity || got.Version != p.Version || got.Name != p.Name {
		t.Errorf("round trip %+v, want %+v", got, p)
	}
}
