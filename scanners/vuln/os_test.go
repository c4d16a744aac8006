package vuln

import (
	"strings"
	"testing"

	"github.com/aquasecurity/trivy-db/pkg/types"
)

// TestOSComparers pins the edge cases of the OS version rules: epochs,
// Alpine's -r revisions and suffixes, Debian's ~, rpm's release parts.
func TestOSComparers(t *testing.T) {
	tests := []struct {
		name string
		cmp  compareFunc
		a, b string
		want int
	}{
		{"deb epoch beats upstream", compareDeb, "1:1.0-1", "2.0-1", 1},
		{"deb tilde sorts before release", compareDeb, "3.0.2~rc1-1", "3.0.2-1", -1},
		{"deb ubuntu revision", compareDeb, "3.0.2-0ubuntu1.7", "3.0.2-0ubuntu1.8", -1},
		{"deb ubuntu security suffix", compareDeb, "8.32-4.1ubuntu1.2", "8.32-4.1ubuntu1", 1},
		{"apk revision", compareAPK, "3.1.4-r5", "3.1.4-r6", -1},
		{"apk revision is numeric", compareAPK, "1.36.1-r9", "1.36.1-r30", -1},
		{"apk pre-release", compareAPK, "1.2.3_rc1-r0", "1.2.3-r0", -1},
		{"apk letter suffix", compareAPK, "1.1.1a-r0", "1.1.1-r0", 1},
		{"rpm epoch beats upstream", compareRPM, "3.0.7-27.el9", "1:3.0.1-47.el9_1", -1},
		{"rpm same epoch", compareRPM, "1:3.0.1-43.el9_0", "1:3.0.1-47.el9_1", -1},
		{"rpm zero epoch equals none", compareRPM, "0:252.16-1.amzn2023.0.2", "252.16-1.amzn2023.0.2", 0},
		{"rpm el8_9 dist", compareRPM, "8.0p1-19.el8_9.1", "8.0p1-19.el8_9.2", -1},
		{"rpm tilde", compareRPM, "1.0~rc1-1", "1.0-1", -1},
		{"rpm module release", compareRPM, "1.15.13-1.module_el8.4.0+2519+614b07b8", "1.15.14-1.module_el8.4.0+2519+614b07b8", -1},
	}
	for _, tt := range tests {
		got, err := tt.cmp(tt.a, tt.b)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if sign(got) != tt.want {
			t.Errorf("%s: compare(%q, %q) = %d, want %d", tt.name, tt.a, tt.b, got, tt.want)
		}
	}
}

// TestModularName turns a modularity label into trivy-db's key prefix.
func TestModularName(t *testing.T) {
	for _, tt := range []struct{ name, label, want string }{
		{"npm", "nodejs:12:8030020201124152102:229f0a1c", "nodejs:12::npm"},
		{"golang", "go-toolset:rhel8:8040020210810210707:5081a262", "go-toolset:rhel8::golang"},
		{"bash", "", "bash"},
		{"x", "broken", "x"},
	} {
		if got := modularName(tt.name, tt.label); got != tt.want {
			t.Errorf("modularName(%q, %q) = %q, want %q", tt.name, tt.label, got, tt.want)
		}
	}
}

// TestOSBuckets maps os-release versions to trivy-db's buckets.
func TestOSBuckets(t *testing.T) {
	for _, tt := range []struct{ family, version, want string }{
		{"alpine", "3.19.1", "alpine 3.19"},
		{"alpine", "3.20.0_alpha20240315", "alpine 3.20"},
		{"ubuntu", "22.04", "ubuntu 22.04"},
		{"amazon", "2", "amazon linux 2"},
		{"amazon", "2023", "amazon linux 2023"},
		{"amazon", "2023.6.20241010", "amazon linux 2023"},
		{"amazon", "2018.03", "amazon linux 1"},
		{"rocky", "9.3", "rocky 9"},
		{"alma", "8.10", "alma 8"},
		{"redhat", "9.4", "Red Hat"},
		{"centos", "7.9.2009", "Red Hat"},
		{"redhat", "5.11", ""},
		{"debian", "12.5", "debian 12"},
	} {
		fam, ok := osFamilies[tt.family]
		if !ok {
			t.Fatalf("no family %s", tt.family)
		}
		got := ""
		if rel := fam.release(tt.version); rel != "" {
			got = fam.bucket(rel)
		}
		if got != tt.want {
			t.Errorf("%s %s: bucket %q, want %q", tt.family, tt.version, got, tt.want)
		}
	}
}

// TestLatestPerCVE picks Red Hat's advisory per CVE as Trivy does.
func TestLatestPerCVE(t *testing.T) {
	advs := []types.Advisory{
		{VulnerabilityID: "CVE-1", FixedVersion: ""},
		{VulnerabilityID: "CVE-1", FixedVersion: "1:3.0.1-43.el9_0", VendorIDs: []string{"RHSA-A"}},
		{VulnerabilityID: "CVE-1", FixedVersion: "1:3.0.1-47.el9_1", VendorIDs: []string{"RHSA-B"}},
		{VulnerabilityID: "CVE-1", FixedVersion: "1:3.0.1-45.el9_1", VendorIDs: []string{"RHSA-C"}},
		{VulnerabilityID: "CVE-2", FixedVersion: "2.0-1", Arches: []string{"aarch64"}},
		{VulnerabilityID: "CVE-3", FixedVersion: "", Status: types.StatusWillNotFix},
	}
	for _, tt := range []struct {
		arch string
		want []string
	}{
		{"x86_64", []string{"CVE-1 1:3.0.1-47.el9_1", "CVE-3 "}},
		{"aarch64", []string{"CVE-1 1:3.0.1-47.el9_1", "CVE-2 2.0-1", "CVE-3 "}},
		{"noarch", []string{"CVE-1 1:3.0.1-47.el9_1", "CVE-2 2.0-1", "CVE-3 "}},
	} {
		var got []string
		for _, a := range latestPerCVE(advs, tt.arch) {
			got = append(got, a.VulnerabilityID+" "+a.FixedVersion)
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: got %q, want %q", tt.arch, got, tt.want)
		}
	}
}
