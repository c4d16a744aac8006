package vulndb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildOS builds the OS fixtures (real advisories) plus a few edge
// cases and reads back trivy-db's layouts.
func TestBuildOS(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("testdata/os")); err != nil {
		t.Fatal(err)
	}
	extra := map[string]string{
		// vuln-list keeps Alpine's secdb one package per file; an ID with a
		// remark and the CVE_ spelling.
		"alpine-secdb/busybox.json": `{"name":"busybox","distroversion":"v3.20","secfixes":{"1.36.1-r30":["CVE_2023-42364 (+ regression fix)"],"0":["CVE-2021-28831"]}}`,
		// not-affected and needs-triage are not advisories.
		"ubuntu/CVE-2022-3996.json": `{"Candidate":"CVE-2022-3996","Priority":"low","Patches":{"openssl":{"jammy":{"Status":"not-affected","Note":"code not present"},"noble":{"Status":"needs-triage"}}}}`,
	}
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if _, err := Build(context.Background(), dir, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	buckets, err := db.Buckets()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alma 8", "alpine 3.19", "alpine 3.20", "amazon linux 2", "amazon linux 2023", "Red Hat", "Red Hat CPE", "rocky 8", "ubuntu 22.04"} {
		if !strings.Contains("\x00"+strings.Join(buckets, "\x00")+"\x00", "\x00"+want+"\x00") {
			t.Errorf("bucket %q missing from %q", want, buckets)
		}
	}
	if got, _ := db.Advisories("alpine 3.20", "busybox"); len(got) != 2 || got[0].VulnerabilityID != "CVE-2021-28831" || got[0].FixedVersion != "0" ||
		got[1].VulnerabilityID != "CVE-2023-42364" || got[1].FixedVersion != "1.36.1-r30" {
		t.Errorf("busybox advisories %+v", got)
	}
	if got, _ := db.Advisories("ubuntu 22.04", "openssl"); len(got) != 1 || got[0].VulnerabilityID != "CVE-2023-0286" {
		t.Errorf("ubuntu openssl advisories %+v (not-affected must not be one)", got)
	}
	// Rocky: per-architecture entries.
	if got, _ := db.RockyAdvisories("rocky 8", "openssh", "aarch64"); len(got) != 2 || got[0].FixedVersion != "8.0p1-19.el8_9.2" || got[0].VendorIDs[0] != "RLSA-2024:0606" {
		t.Errorf("rocky aarch64 %+v", got)
	}
	if got, _ := db.RockyAdvisories("rocky 8", "openssh", "x86_64"); len(got) != 0 {
		t.Errorf("rocky x86_64 %+v, want none (the erratum lists aarch64 only)", got)
	}
	// Alma: modular key.
	if got, _ := db.Advisories("alma 8", "go-toolset:rhel8::golang"); len(got) != 4 {
		t.Errorf("alma modular golang %+v", got)
	}
	// Red Hat: BaseOS packages through the content sets' CPEs, not AppStream's.
	got, err := db.RedHatAdvisories("openssl-libs", []string{"rhel-9-for-x86_64-baseos-rpms", "rhel-9-for-x86_64-appstream-rpms"}, nil)
	if err != nil || len(got) != 8 || got[0].VulnerabilityID != "CVE-2022-4203" || got[0].VendorIDs[0] != "RHSA-2023:0946" || got[0].FixedVersion != "1:3.0.1-47.el9_1" {
		t.Errorf("Red Hat openssl-libs %+v (%v)", got, err)
	}
	if got, err := db.RedHatAdvisories("openssl-libs", []string{"rhel-8-for-x86_64-baseos-rpms"}, nil); err != nil || len(got) != 0 {
		t.Errorf("RHEL 8 content sets matched a RHEL 9 advisory: %+v (%v)", got, err)
	}
	if got, err := db.RedHatAdvisories("openssl-devel", []string{"rhel-9-for-x86_64-baseos-rpms"}, nil); err != nil || len(got) != 0 {
		t.Errorf("BaseOS matched an AppStream package: %+v (%v)", got, err)
	}
	if _, err := db.RedHatAdvisories("openssl", []string{"no-such-repo"}, nil); !errors.Is(err, ErrNoRedHatCPE) {
		t.Errorf("unknown content set: %v, want ErrNoRedHatCPE", err)
	}
	v, ok, err := db.Vulnerability("CVE-2023-0286")
	if err != nil || !ok || v.VendorSeverity["redhat"].String() != "HIGH" || v.VendorSeverity["ubuntu"].String() != "HIGH" {
		t.Errorf("CVE-2023-0286 severities %+v (%v)", v.VendorSeverity, err)
	}
}

// TestBuildOSErrors names the bad file.
func TestBuildOSErrors(t *testing.T) {
	for name, body := range map[string]string{
		"amazon/2099/ALAS-x.json":    `{"id":"ALAS-x","cveids":["CVE-2024-1"]}`,
		"ubuntu/CVE-2024-1.json":     `{"Candidate":"CVE-2024-1","Patches":{"openssl":{"jammy":{"Status":"released"}}}}`,
		"redhat-osv/bad.json":        `{"id":"GHSA-xxxx"}`,
		"redhat-cpe/nvr-to-cpe.json": `{"ubi9-container-9.1-1750-x86_64":["rhel-9-for-x86_64-baseos-rpms"]}`,
		"redhat-cpe/other.json":      `{}`,
		"alpine-secdb/nameless.json": `{"distroversion":"v3.19","secfixes":{}}`,
	} {
		src := t.TempDir()
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Build(context.Background(), t.TempDir(), src, time.Now()); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
}

// TestRockyUnknownArch: a package whose arch is unknown (an SBOM without
// it) is matched against every entry rather than none.
func TestRockyUnknownArch(t *testing.T) {
	dir := t.TempDir()
	if _, err := Build(context.Background(), dir, "testdata/os", time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.RockyAdvisories("rocky 8", "openssh", ""); err != nil || len(got) != 2 {
		t.Errorf("unknown arch: %+v (%v), want both CVEs", got, err)
	}
}

// TestRedHatBuildNVR: an image's own build (the NVR of its Red Hat build
// Dockerfile) brings the advisories of the products trivy-db maps it to
// (the "nvr" bucket of "Red Hat CPE"), alone or beside content sets.
func TestRedHatBuildNVR(t *testing.T) {
	// testdata/os/redhat-cpe/nvr-to-cpe.json maps this UBI 9 build to RHEL
	// 9 BaseOS's CPE, as vuln-list-redhat's nvr-to-cpe.json maps builds.
	const build = "ubi9-container-9.1-1750-x86_64"
	src := "testdata/os"
	dir := t.TempDir()
	if _, err := Build(context.Background(), dir, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	for _, tc := range []struct {
		name        string
		contentSets []string
		nvrs        []string
		want        int
		wantErr     error
	}{
		{name: "build alone", nvrs: []string{build}, want: 8},
		{name: "build beside a content set of another release", contentSets: []string{"rhel-8-for-x86_64-baseos-rpms"}, nvrs: []string{build}, want: 8},
		{name: "content set of another release alone", contentSets: []string{"rhel-8-for-x86_64-baseos-rpms"}},
		{name: "unknown build beside a content set", contentSets: []string{"rhel-8-for-x86_64-baseos-rpms"}, nvrs: []string{"ubi9-container-9.9-1-x86_64"}},
		{name: "unknown build alone", nvrs: []string{"ubi9-container-9.9-1-x86_64"}, wantErr: ErrNoRedHatCPE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.RedHatAdvisories("openssl-libs", tc.contentSets, tc.nvrs)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != tc.want {
				t.Fatalf("%d advisories, want %d: %+v", len(got), tc.want, got)
			}
			if tc.want > 0 && (got[0].VulnerabilityID != "CVE-2022-4203" || got[0].VendorIDs[0] != "RHSA-2023:0946") {
				t.Errorf("first advisory %+v", got[0])
			}
		})
	}
}
