package analyzer

import "testing"

// TestRPMFromOSVendor tells a distribution's rpm packages from third-party
// ones by Vendor, as Trivy does.
func TestRPMFromOSVendor(t *testing.T) {
	for _, tt := range []struct {
		vendor, release string
		want            bool
	}{
		{"Red Hat, Inc.", "47.el9_1", true},
		{"Rocky Enterprise Software Foundation", "19.el8_9.2", true},
		{"AlmaLinux", "1.el8", true},
		{"CloudLinux", "1.el9", true},
		{"Amazon Linux", "1.amzn2023.0.2", true},
		{"", "185.433.amzn2", true}, // Amazon's packages may have no Vendor
		{"", "1.el9", false},
		{"Docker", "1.el9", false},
		{"Fedora Project", "1.fc39", true},
		{"NodeSource", "1nodesource", false},
	} {
		if got := rpmFromOSVendor(tt.vendor, tt.release); got != tt.want {
			t.Errorf("rpmFromOSVendor(%q, %q) = %v, want %v", tt.vendor, tt.release, got, tt.want)
		}
	}
}
