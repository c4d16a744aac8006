package waf

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestDirectivesGolden pins the Coraza configuration generated per rule: which
// CRS files load, which rules are removed, which exclusions apply.
func TestDirectivesGolden(t *testing.T) {
	tests := []struct {
		name    string
		enabled []policy.Protection
		pl      int
		// detection is the rule's setting ("" is the extended default).
		detection policy.WAFDetection
	}{
		{"all-pl1", policy.Protections, 1, ""},
		{"all-crs-pl1", policy.Protections, 1, policy.WAFDetectionCRS},
		{"sqli-xss-pl2", []policy.Protection{policy.ProtectionSQLi, policy.ProtectionXSS}, 2, ""},
		{"shellshock-only-pl4", []policy.Protection{policy.ProtectionShellshock}, 4, ""},
		{"cmdi-without-shellshock-pl1", []policy.Protection{policy.ProtectionCmdi}, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enabled := map[policy.Protection]bool{}
			for _, p := range tc.enabled {
				enabled[p] = true
			}
			got, err := directives(enabled, tc.pl, DefaultInspectionLimit, true, extrasFor(tc.detection))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "directives-"+tc.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDirectivesGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("directives differ from %s (run with -update after checking):\n%s", golden, got)
			}
		})
	}
}
