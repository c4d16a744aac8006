package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// osAdvisories is the OS advisory fixture set (real advisories: Alpine
// secdb, Ubuntu CVE tracker, ALAS, Rocky and Alma errata, a Red Hat OSV
// RHSA) that db build reads.
const osAdvisories = "../vulndb/testdata/os"

// rpmPackage is one package installed into a test rpm database.
type rpmPackage struct {
	name, epoch, version, release, arch, modularity, vendor string
}

// Vendors of the distributions' packages, as their rpm headers say.
const (
	vendorRocky  = "Rocky Enterprise Software Foundation"
	vendorAlma   = "AlmaLinux"
	vendorRedHat = "Red Hat, Inc."
)

// rpmDatabase builds the packages with rpmbuild, installs them (--justdb)
// into a fresh SQLite rpm database with rpm itself and returns the file.
func rpmDatabase(t *testing.T, pkgs []rpmPackage) []byte {
	t.Helper()
	testenv.LookPath(t, "rpmbuild", "rpm")
	testenv.LookPath(t, "rpm", "rpm")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	db := filepath.Join(dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	run("rpm", "--dbpath", db, "--define", "_db_backend sqlite", "--initdb")
	for i, p := range pkgs {
		spec := fmt.Sprintf("Name: %s\nVersion: %s\nRelease: %s\nSummary: t\nLicense: MIT\n", p.name, p.version, p.release)
		if p.epoch != "" {
			spec += "Epoch: " + p.epoch + "\n"
		}
		if p.modularity != "" {
			spec += "ModularityLabel: " + p.modularity + "\n"
		}
		if p.vendor != "" {
			spec += "Vendor: " + p.vendor + "\n"
		}
		spec += "%description\nt\n%files\n"
		file := filepath.Join(dir, fmt.Sprintf("%d.spec", i))
		if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		top := filepath.Join(dir, fmt.Sprintf("top%d", i))
		run("rpmbuild", "-bb", "--quiet", "--target", p.arch, "--define", "_topdir "+top, file)
		rpms, err := filepath.Glob(filepath.Join(top, "RPMS", p.arch, "*.rpm"))
		if err != nil || len(rpms) != 1 {
			t.Fatalf("rpmbuild made %v (%v)", rpms, err)
		}
		run("rpm", "-i", "--justdb", "--nodeps", "--noscripts", "--ignorearch", "--ignoreos",
			"--dbpath", db, "--define", "_db_backend sqlite", rpms[0])
	}
	raw, err := os.ReadFile(filepath.Join(db, "rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// osRelease writes an /etc/os-release.
func osRelease(id, version string) []byte {
	return []byte(fmt.Sprintf("NAME=%q\nID=%s\nVERSION_ID=%q\n", id, id, version))
}

// scanFiles pushes a one-layer image holding files to a loopback registry
// and scans it.
func scanFiles(t *testing.T, db *vulndb.DB, files map[string][]byte) *Report {
	t.Helper()
	dir := t.TempDir()
	scantest.WriteFiles(t, dir, files)
	img, err := mutate.AppendLayers(empty.Image, scantest.DirLayer(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/os/img:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	rep, err := Image(context.Background(), ref, db, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// osFindings lists findings as "package installed ID fixed status [vendor IDs]".
func osFindings(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		line := strings.Join([]string{f.PkgName, f.InstalledVersion, f.VulnerabilityID, f.FixedVersion, f.Status}, " ")
		if len(f.VendorIDs) > 0 {
			line += " " + strings.Join(f.VendorIDs, ",")
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

func dpkgStatus(entries ...[3]string) []byte {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nSource: %s\nVersion: %s\nMaintainer: Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>\nArchitecture: amd64\n\n", e[0], e[1], e[2])
	}
	return []byte(b.String())
}

// apkRepositories is an /etc/apk/repositories naming the main and
// community repositories of each release ("v3.19", "edge").
func apkRepositories(releases ...string) []byte {
	var b strings.Builder
	for _, r := range releases {
		fmt.Fprintf(&b, "https://dl-cdn.alpinelinux.org/alpine/%s/main\nhttps://dl-cdn.alpinelinux.org/alpine/%s/community\n", r, r)
	}
	return []byte(b.String())
}

func apkInstalled(entries ...[3]string) []byte {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "C:Q1\nP:%s\nV:%s\nA:x86_64\no:%s\n\n", e[0], e[2], e[1])
	}
	return []byte(b.String())
}

// TestOSMatching scans, per OS, an image whose package database holds a
// version an advisory fixes and its benign twin holding the fixed version.
// The expected findings were read off the advisories by hand.
func TestOSMatching(t *testing.T) {
	dbDir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dbDir, osAdvisories, time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	const goLabel = "go-toolset:rhel8:8040020210810210707:5081a262"
	const goRel = "1.module_el8.4.0+2519+614b07b8"
	rhsa := []string{"CVE-2022-4203", "CVE-2022-4304", "CVE-2022-4450", "CVE-2023-0215", "CVE-2023-0216", "CVE-2023-0217", "CVE-2023-0286", "CVE-2023-0401"}
	var rhel []string
	for _, c := range rhsa {
		for _, p := range []string{"openssl", "openssl-libs"} {
			rhel = append(rhel, p+" 1:3.0.1-43.el9_0 "+c+" 1:3.0.1-47.el9_1 fixed RHSA-2023:0946")
		}
	}
	sort.Strings(rhel)

	tests := []struct {
		name        string
		vulnerable  map[string][]byte
		fixed       map[string][]byte
		want        []string
		wantFixed   []string // findings left in the benign twin
		wantWarning string
	}{{
		// secdb v3.19 main: openssl 3.1.4-r6 fixes CVE-2024-2511; both
		// binary packages of the openssl origin are affected.
		name: "alpine 3.19",
		vulnerable: map[string][]byte{
			"etc/os-release":       osRelease("alpine", "3.19.1"),
			"lib/apk/db/installed": apkInstalled([3]string{"libcrypto3", "openssl", "3.1.4-r5"}, [3]string{"libssl3", "openssl", "3.1.4-r5"}),
		},
		fixed: map[string][]byte{
			"etc/os-release":       osRelease("alpine", "3.19.1"),
			"lib/apk/db/installed": apkInstalled([3]string{"libcrypto3", "openssl", "3.1.4-r6"}, [3]string{"libssl3", "openssl", "3.1.4-r6"}),
		},
		want: []string{
			"libcrypto3 3.1.4-r5 CVE-2024-2511 3.1.4-r6 fixed",
			"libssl3 3.1.4-r5 CVE-2024-2511 3.1.4-r6 fixed",
		},
		// Alpine 3.19's support ended on 2025-11-01.
		wantWarning: "OS alpine 3.19.1 reached its end of life on 2025-11-01",
	}, {
		// An Alpine 3.18 base that installs from the v3.19 repositories:
		// its packages are 3.19's, matched against the alpine 3.19 secdb,
		// as Trivy does. Without /etc/apk/repositories the DB has no
		// bucket for 3.18 and nothing is found ("unsupported" below).
		name: "alpine 3.18 installing from v3.19",
		vulnerable: map[string][]byte{
			"etc/os-release":       osRelease("alpine", "3.18.4"),
			"etc/apk/repositories": apkRepositories("v3.18", "v3.19"),
			"lib/apk/db/installed": apkInstalled([3]string{"libcrypto3", "openssl", "3.1.4-r5"}, [3]string{"libssl3", "openssl", "3.1.4-r5"}),
		},
		fixed: map[string][]byte{
			"etc/os-release":       osRelease("alpine", "3.18.4"),
			"etc/apk/repositories": apkRepositories("v3.18", "v3.19"),
			"lib/apk/db/installed": apkInstalled([3]string{"libcrypto3", "openssl", "3.1.4-r6"}, [3]string{"libssl3", "openssl", "3.1.4-r6"}),
		},
		want: []string{
			"libcrypto3 3.1.4-r5 CVE-2024-2511 3.1.4-r6 fixed",
			"libssl3 3.1.4-r5 CVE-2024-2511 3.1.4-r6 fixed",
		},
		wantWarning: "OS alpine 3.18.4 installs from the alpine 3.19 package repositories (/etc/apk/repositories)",
	}, {
		// CVE tracker: jammy openssl released 3.0.2-0ubuntu1.8 (USN-5844-1);
		// coreutils CVE-2016-2781 deferred (no fix: status affected).
		name: "ubuntu 22.04",
		vulnerable: map[string][]byte{
			"etc/os-release":      osRelease("ubuntu", "22.04"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl3", "openssl", "3.0.2-0ubuntu1.7"}, [3]string{"coreutils", "coreutils", "8.32-4.1ubuntu1"}),
		},
		fixed: map[string][]byte{
			"etc/os-release":      osRelease("ubuntu", "22.04"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl3", "openssl", "3.0.2-0ubuntu1.8"}, [3]string{"coreutils", "coreutils", "8.32-4.1ubuntu1"}),
		},
		want: []string{
			"coreutils 8.32-4.1ubuntu1 CVE-2016-2781  affected",
			"libssl3 3.0.2-0ubuntu1.7 CVE-2023-0286 3.0.2-0ubuntu1.8 fixed",
		},
		wantFixed: []string{"coreutils 8.32-4.1ubuntu1 CVE-2016-2781  affected"},
	}, {
		// ALAS2-2021-1699: kernel 4.14.243-185.433.amzn2 fixes CVE-2021-22543.
		name: "amazon linux 2",
		vulnerable: map[string][]byte{
			"etc/os-release":           osRelease("amzn", "2"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{{name: "kernel", version: "4.14.238", release: "182.422.amzn2", arch: "x86_64"}}),
		},
		fixed: map[string][]byte{
			"etc/os-release":           osRelease("amzn", "2"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{{name: "kernel", version: "4.14.243", release: "185.433.amzn2", arch: "x86_64"}}),
		},
		want:        []string{"kernel 4.14.238-182.422.amzn2 CVE-2021-22543 4.14.243-185.433.amzn2 fixed ALAS2-2021-1699"},
		wantWarning: "OS amazon 2 reached its end of life on 2026-06-30",
	}, {
		// ALAS2023-2024-509: systemd 252.16-1.amzn2023.0.2 fixes CVE-2023-7008.
		name: "amazon linux 2023",
		vulnerable: map[string][]byte{
			"etc/os-release":           osRelease("amzn", "2023"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{{name: "systemd-libs", version: "252.16", release: "1.amzn2023.0.1", arch: "x86_64"}}),
		},
		fixed: map[string][]byte{
			"etc/os-release":           osRelease("amzn", "2023"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{{name: "systemd-libs", version: "252.16", release: "1.amzn2023.0.2", arch: "x86_64"}}),
		},
		want: []string{"systemd-libs 252.16-1.amzn2023.0.1 CVE-2023-7008 252.16-1.amzn2023.0.2 fixed ALAS2023-2024-509"},
	}, {
		// RLSA-2024:0606 lists aarch64 packages only (openssh
		// 8.0p1-19.el8_9.2): an x86_64 build is not matched, as in trivy-db.
		name: "rocky 8",
		vulnerable: map[string][]byte{
			"etc/os-release": osRelease("rocky", "8.9"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{
				{name: "openssh", version: "8.0p1", release: "19.el8_9.1", arch: "aarch64", vendor: vendorRocky},
				{name: "openssh-clients", version: "8.0p1", release: "19.el8_9.1", arch: "x86_64", vendor: vendorRocky},
			}),
		},
		fixed: map[string][]byte{
			"etc/os-release": osRelease("rocky", "8.9"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{
				{name: "openssh", version: "8.0p1", release: "19.el8_9.2", arch: "aarch64", vendor: vendorRocky},
				{name: "openssh-clients", version: "8.0p1", release: "19.el8_9.2", arch: "x86_64", vendor: vendorRocky},
			}),
		},
		want: []string{
			"openssh 8.0p1-19.el8_9.1 CVE-2023-48795 8.0p1-19.el8_9.2 fixed RLSA-2024:0606",
			"openssh 8.0p1-19.el8_9.1 CVE-2023-51385 8.0p1-19.el8_9.2 fixed RLSA-2024:0606",
		},
	}, {
		// ALSA-2021:3076 (go-toolset:rhel8 module): golang
		// 1.15.14-1.module_el8.4.0+2519+614b07b8. go-toolset has no
		// modularity label here, so it is skipped with a warning.
		name: "alma 8",
		vulnerable: map[string][]byte{
			"etc/os-release": osRelease("almalinux", "8.4"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{
				{name: "golang", version: "1.15.13", release: goRel, arch: "x86_64", modularity: goLabel, vendor: vendorAlma},
				{name: "go-toolset", version: "1.15.13", release: goRel, arch: "x86_64", vendor: vendorAlma},
			}),
		},
		fixed: map[string][]byte{
			"etc/os-release": osRelease("almalinux", "8.4"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{
				{name: "golang", version: "1.15.14", release: goRel, arch: "x86_64", modularity: goLabel, vendor: vendorAlma},
			}),
		},
		want: []string{
			"golang 1.15.13-" + goRel + " CVE-2021-27918 1.15.14-" + goRel + " fixed ALSA-2021:3076",
			"golang 1.15.13-" + goRel + " CVE-2021-31525 1.15.14-" + goRel + " fixed ALSA-2021:3076",
			"golang 1.15.13-" + goRel + " CVE-2021-33196 1.15.14-" + goRel + " fixed ALSA-2021:3076",
			"golang 1.15.13-" + goRel + " CVE-2021-34558 1.15.14-" + goRel + " fixed ALSA-2021:3076",
		},
		wantWarning: "AlmaLinux modular packages without a modularity label were not checked",
	}, {
		// RHSA-2023:0946: openssl and openssl-libs 1:3.0.1-47.el9_1 (BaseOS)
		// fix eight CVEs; the epoch is part of both versions.
		name: "rhel 9",
		vulnerable: map[string][]byte{
			"etc/os-release": osRelease("rhel", "9.0"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{
				{name: "openssl", epoch: "1", version: "3.0.1", release: "43.el9_0", arch: "x86_64", vendor: vendorRedHat},
				{name: "openssl-libs", epoch: "1", version: "3.0.1", release: "43.el9_0", arch: "x86_64", vendor: vendorRedHat},
				// A third-party build of a package Red Hat fixed: not matched.
				{name: "openssl-devel", epoch: "1", version: "3.0.1", release: "1.custom", arch: "x86_64", vendor: "Example Corp"},
			}),
		},
		fixed: map[string][]byte{
			"etc/os-release": osRelease("rhel", "9.0"),
			"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{
				{name: "openssl", epoch: "1", version: "3.0.1", release: "47.el9_1", arch: "x86_64", vendor: vendorRedHat},
				{name: "openssl-libs", epoch: "1", version: "3.0.1", release: "47.el9_1", arch: "x86_64", vendor: vendorRedHat},
			}),
		},
		want:        rhel,
		wantWarning: "1 OS packages from outside the distribution (third-party repositories) were not matched against redhat 9.0's advisories: openssl-devel",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := scanFiles(t, db, tt.vulnerable)
			if got := osFindings(rep); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("findings\n got %q\nwant %q\nwarnings %q", got, tt.want, rep.Warnings)
			}
			if tt.wantWarning != "" && !strings.Contains(strings.Join(rep.Warnings, "\n"), tt.wantWarning) {
				t.Errorf("warnings %q lack %q", rep.Warnings, tt.wantWarning)
			}
			twin := scanFiles(t, db, tt.fixed)
			if got := osFindings(twin); !reflect.DeepEqual(got, tt.wantFixed) {
				t.Errorf("benign twin findings\n got %q\nwant %q", got, tt.wantFixed)
			}
		})
	}

	// A Red Hat image's content manifests name the repositories its
	// packages came from; the advisories are matched through those
	// repositories' CPEs, not the release's defaults.
	t.Run("rhel content manifest", func(t *testing.T) {
		rpms := rpmDatabase(t, []rpmPackage{
			{name: "openssl", epoch: "1", version: "3.0.1", release: "43.el9_0", arch: "x86_64", vendor: vendorRedHat},
			{name: "openssl-libs", epoch: "1", version: "3.0.1", release: "43.el9_0", arch: "x86_64", vendor: vendorRedHat},
		})
		manifest := func(sets ...string) []byte {
			b, err := json.Marshal(map[string]any{"metadata": map[string]any{"icm_version": 1, "image_layer_index": 0}, "content_sets": sets})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, tc := range []struct {
			name        string
			sets        []string
			dockerfile  string // root/buildinfo/Dockerfile-ubi9-9.1-1750, when set
			want        []string
			wantWarning string
		}{
			// RHSA-2023:0946 is for the BaseOS CPE; the manifest's
			// BaseOS set (with the build's generic suffix) reaches it.
			{name: "baseos", sets: []string{"rhel-9-for-x86_64-baseos-rpms__9", "rhel-9-for-x86_64-appstream-rpms__9"}, want: rhel},
			// A layer built from AppStream only is not the advisory's
			// product: the defaults (BaseOS and AppStream) would have
			// reported it.
			{name: "appstream only", sets: []string{"rhel-9-for-x86_64-appstream-rpms"}},
			// ... unless the image's own build is one the DB maps to
			// the advisory's product (vulndb's
			// testdata/os/redhat-cpe/nvr-to-cpe.json: this UBI 9 build
			// to BaseOS), as Trivy matches through the build Dockerfile.
			{name: "appstream only, a build of the BaseOS product", sets: []string{"rhel-9-for-x86_64-appstream-rpms"},
				dockerfile: "FROM scratch\nLABEL com.redhat.component=\"ubi9-container\" \\\n      architecture=\"x86_64\"\n", want: rhel},
			{name: "appstream only, a build the DB does not know", sets: []string{"rhel-9-for-x86_64-appstream-rpms"},
				dockerfile: "LABEL com.redhat.component=ubi9-minimal-container architecture=x86_64\n"},
			// A repository the DB maps to no CPE: said, not passed
			// silently.
			{name: "unknown repository", sets: []string{"rhel-9-for-x86_64-example-rpms"},
				wantWarning: "Red Hat packages were not checked: no Red Hat CPE in the vulnerability DB for the content sets rhel-9-for-x86_64-example-rpms"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				files := map[string][]byte{
					"etc/os-release":           osRelease("rhel", "9.0"),
					"var/lib/rpm/rpmdb.sqlite": rpms,
					"root/buildinfo/content_manifests/ubi9-container-9.0-1.json": manifest(tc.sets...),
				}
				if tc.dockerfile != "" {
					files["root/buildinfo/Dockerfile-ubi9-9.1-1750"] = []byte(tc.dockerfile)
				}
				rep := scanFiles(t, db, files)
				if got := osFindings(rep); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("findings\n got %q\nwant %q\nwarnings %q", got, tc.want, rep.Warnings)
				}
				if tc.wantWarning != "" && !strings.Contains(strings.Join(rep.Warnings, "\n"), tc.wantWarning) {
					t.Errorf("warnings %q lack %q", rep.Warnings, tc.wantWarning)
				}
			})
		}
	})

	t.Run("unsupported", func(t *testing.T) {
		for _, tc := range []struct {
			files map[string][]byte
			want  string
		}{
			{map[string][]byte{"etc/os-release": osRelease("fedora", "39"),
				"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{{name: "bash", version: "5.2.26", release: "1.fc39", arch: "x86_64"}})},
				"OS fedora 39 is not supported: its packages were not checked"},
			{map[string][]byte{"etc/os-release": osRelease("alpine", "3.18.4"),
				"lib/apk/db/installed": apkInstalled([3]string{"libssl3", "openssl", "3.1.4-r0"})},
				`the vulnerability DB has no advisories for alpine 3.18.4 (bucket "alpine 3.18")`},
			// A 3.19 base installing from edge is matched against edge's
			// advisories, which this DB lacks, never against 3.19's.
			{map[string][]byte{"etc/os-release": osRelease("alpine", "3.19.1"), "etc/apk/repositories": apkRepositories("v3.19", "edge"),
				"lib/apk/db/installed": apkInstalled([3]string{"libssl3", "openssl", "3.1.4-r5"})},
				`the vulnerability DB has no advisories for alpine 3.19.1 (repository edge) (bucket "alpine edge")`},
			{map[string][]byte{"etc/os-release": osRelease("rhel", "5.11"),
				"var/lib/rpm/rpmdb.sqlite": rpmDatabase(t, []rpmPackage{{name: "openssl", version: "0.9.8e", release: "40.el5_11", arch: "x86_64"}})},
				"OS redhat 5.11 is not supported (no advisories for this release)"},
		} {
			rep := scanFiles(t, db, tc.files)
			if len(rep.Findings) != 0 || !strings.Contains(strings.Join(rep.Warnings, "\n"), tc.want) {
				t.Errorf("findings %q, warnings %q; want a warning %q", osFindings(rep), rep.Warnings, tc.want)
			}
		}
	})
}

// An Ubuntu with Ubuntu Pro's esm-infra enabled is matched, past its
// release's standard end of life, against the release's ESM advisories, as
// Trivy does. The advisory has the Ubuntu CVE tracker's form (vuln-list's
// JSON) with the test's own CVE ID and versions: a CVE published after
// focal's standard support ended, fixed only in ESM.
func TestUbuntuESM(t *testing.T) {
	adv := t.TempDir()
	scantest.WriteFiles(t, adv, map[string][]byte{"ubuntu/CVE-2099-0001.json": []byte(`{
  "Candidate": "CVE-2099-0001",
  "PublicDate": "2099-01-01 00:00:00 UTC",
  "Priority": "medium",
  "description": "A test advisory in the tracker's form.",
  "References": [],
  "Patches": {
    "openssl": {
      "upstream": {"Status": "released", "Note": "1.1.1x"},
      "bionic": {"Status": "needed", "Note": ""},
      "focal": {"Status": "needed", "Note": ""},
      "esm-infra/focal": {"Status": "released", "Note": "1.1.1f-1ubuntu2.24+esm1"},
      "esm-apps/focal": {"Status": "DNE", "Note": ""},
      "jammy": {"Status": "released", "Note": "3.0.2-0ubuntu1.20"}
    }
  }
}`)})
	dbDir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dbDir, adv, time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	esm := func(state string) []byte {
		return []byte(`{"_schema_version":"0.1","services":[{"name":"esm-apps","status":"disabled"},{"name":"esm-infra","status":"` + state + `"}]}`)
	}
	const focalSSL = "1.1.1f-1ubuntu2.23"
	for _, tc := range []struct {
		name        string
		files       map[string][]byte
		want        []string
		wantWarning string
	}{{
		name: "focal with ESM",
		files: map[string][]byte{"etc/os-release": osRelease("ubuntu", "20.04"), "var/lib/ubuntu-advantage/status.json": esm("enabled"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl1.1", "openssl", focalSSL})},
		want: []string{"libssl1.1 " + focalSSL + " CVE-2099-0001 1.1.1f-1ubuntu2.24+esm1 fixed"},
	}, {
		name: "focal with the ESM fix",
		files: map[string][]byte{"etc/os-release": osRelease("ubuntu", "20.04"), "var/lib/ubuntu-advantage/status.json": esm("enabled"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl1.1", "openssl", "1.1.1f-1ubuntu2.24+esm1"})},
	}, {
		name: "focal without ESM",
		files: map[string][]byte{"etc/os-release": osRelease("ubuntu", "20.04"), "var/lib/ubuntu-advantage/status.json": esm("disabled"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl1.1", "openssl", focalSSL})},
		want: []string{"libssl1.1 " + focalSSL + " CVE-2099-0001  affected"},
	}, {
		// jammy's standard support lasts until 2027: its own advisories.
		name: "jammy with ESM",
		files: map[string][]byte{"etc/os-release": osRelease("ubuntu", "22.04"), "var/lib/ubuntu-advantage/status.json": esm("enabled"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl3", "openssl", "3.0.2-0ubuntu1.19"})},
		want: []string{"libssl3 3.0.2-0ubuntu1.19 CVE-2099-0001 3.0.2-0ubuntu1.20 fixed"},
	}, {
		// No bionic ESM advisories in this DB: the standard ones, said so.
		name: "bionic with ESM, none in the DB",
		files: map[string][]byte{"etc/os-release": osRelease("ubuntu", "18.04"), "var/lib/ubuntu-advantage/status.json": esm("enabled"),
			"var/lib/dpkg/status": dpkgStatus([3]string{"libssl1.1", "openssl", "1.1.1-1ubuntu2.1~18.04.23"})},
		want:        []string{"libssl1.1 1.1.1-1ubuntu2.1~18.04.23 CVE-2099-0001  affected"},
		wantWarning: `ESM is enabled in the image (var/lib/ubuntu-advantage/status.json) but the vulnerability DB has no ESM advisories for ubuntu 18.04 (bucket "ubuntu 18.04-ESM")`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rep := scanFiles(t, db, tc.files)
			if got := osFindings(rep); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("findings\n got %q\nwant %q\nwarnings %q", got, tc.want, rep.Warnings)
			}
			if tc.wantWarning != "" && !strings.Contains(strings.Join(rep.Warnings, "\n"), tc.wantWarning) {
				t.Errorf("warnings %q lack %q", rep.Warnings, tc.wantWarning)
			}
		})
	}
}
