package analyzer

import (
	"context"
	"debug/buildinfo"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/scanners/image"

	"github.com/taskguard/taskguard/internal/testenv"
)

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return false }
func (f fileInfo) Sys() any           { return nil }

func TestOSRelease(t *testing.T) {
	tests := []struct {
		name, path, content string
		want                *OS
		wantErr             bool
	}{
		{"debian", "etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n", &OS{Family: "debian", Name: "12"}, false},
		{"ubuntu", "usr/lib/os-release", "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n", &OS{Family: "ubuntu", Name: "22.04"}, false},
		{"alpine", "etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n", &OS{Family: "alpine", Name: "3.19.1"}, false},
		{"rhel alias", "etc/os-release", "ID=\"rhel\"\nVERSION_ID=\"9.3\"\n", &OS{Family: "redhat", Name: "9.3"}, false},
		{"debian sid", "etc/os-release", "ID=debian\nVERSION_CODENAME=trixie\n", &OS{Family: "debian", Name: "trixie"}, false},
		{"alpine-release", "etc/alpine-release", "3.20.0\n", &OS{Family: "alpine", Name: "3.20.0"}, false},
		{"debian_version", "etc/debian_version", "12.5\n", &OS{Family: debianPointRelease, Name: "12.5"}, false},
		{"no id", "etc/os-release", "NAME=x\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := osRelease{}
			if !a.Required(tt.path, nil) {
				t.Fatalf("not required: %s", tt.path)
			}
			res, err := a.Analyze(context.Background(), Input{Path: tt.path, Content: []byte(tt.content)})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(res.OS, tt.want) {
				t.Errorf("os = %+v, want %+v", res.OS, tt.want)
			}
		})
	}
	if _, err := (osRelease{}).Analyze(context.Background(), Input{Path: "etc/debian_version", Content: []byte("bookworm/sid\n")}); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("ubuntu debian_version: err = %v, want ErrNotApplicable", err)
	}
}

const dpkgSample = `Package: perl-base
Essential: yes
Status: install ok installed
Priority: required
Installed-Size: 7788
Maintainer: Niko Tyni <ntyni@debian.org>
Architecture: amd64
Source: perl
Version: 5.36.0-7+deb12u3
Description: minimal Perl system
 Perl is a scripting language used in many system scripts and utilities.
 .
 This package provides a Perl interpreter.

Package: removed-pkg
Status: deinstall ok config-files
Version: 1.0

Package: libssl3
Status: install ok installed
Source: openssl (3.0.15-1~deb12u1)
Version: 3.0.15-1~deb12u1

Package: tzdata
Status: install ok installed
Version: 2026b-0+deb12u1
`

func TestDpkgStatus(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []Package
		wantErr string
	}{
		{"status", dpkgSample, []Package{
			{Type: TypeDpkg, Name: "perl-base", Version: "5.36.0-7+deb12u3", SrcName: "perl", SrcVersion: "5.36.0-7+deb12u3"},
			{Type: TypeDpkg, Name: "libssl3", Version: "3.0.15-1~deb12u1", SrcName: "openssl", SrcVersion: "3.0.15-1~deb12u1"},
			{Type: TypeDpkg, Name: "tzdata", Version: "2026b-0+deb12u1", SrcName: "tzdata", SrcVersion: "2026b-0+deb12u1"},
		}, ""},
		{"status.d without Status", "Package: libc6\nVersion: 2.36-9+deb12u7\nSource: glibc\n", []Package{
			{Type: TypeDpkg, Name: "libc6", Version: "2.36-9+deb12u7", SrcName: "glibc", SrcVersion: "2.36-9+deb12u7"},
		}, ""},
		{"unpacked and half-configured are on disk", "Package: a\nStatus: install ok unpacked\nVersion: 1\n\nPackage: b\nStatus: install ok half-configured\nVersion: 2\n\nPackage: c\nStatus: install ok triggers-pending\nVersion: 3\n\nPackage: d\nStatus: hold ok installed\nVersion: 4\n", []Package{
			{Type: TypeDpkg, Name: "a", Version: "1", SrcName: "a", SrcVersion: "1"},
			{Type: TypeDpkg, Name: "b", Version: "2", SrcName: "b", SrcVersion: "2"},
			{Type: TypeDpkg, Name: "c", Version: "3", SrcName: "c", SrcVersion: "3"},
			{Type: TypeDpkg, Name: "d", Version: "4", SrcName: "d", SrcVersion: "4"},
		}, ""},
		{"removed ones are not", "Package: a\nStatus: deinstall ok installed\nVersion: 1\n\nPackage: b\nStatus: purge ok installed\nVersion: 2\n\nPackage: c\nStatus: install ok not-installed\nVersion: 3\n\nPackage: d\nStatus: install ok config-files\nVersion: 4\n\nPackage: e\nStatus: garbage\nVersion: 5\n", nil, ""},
		{"no version", "Package: x\nStatus: install ok installed\n", nil, "no Version"},
		{"garbage line", "Package: x\nthis is not a field\n", nil, "not a field"},
		{"bad source", "Package: x\nVersion: 1\nSource: y 2\n", nil, "malformed Source"},
		{"stray continuation", " continued\n", nil, "outside a field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDpkgStatus([]byte(tt.content))
			if !wantError(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	a := dpkgStatus{}
	for p, want := range map[string]bool{
		"var/lib/dpkg/status":                 true,
		"var/lib/dpkg/status.d/libc6":         true,
		"var/lib/dpkg/status.d/libc6.md5sums": false,
		"var/lib/dpkg/status-old":             false,
		"var/lib/dpkg/status.d/sub/x":         false,
	} {
		if got := a.Required(p, nil); got != want {
			t.Errorf("Required(%s) = %v, want %v", p, got, want)
		}
	}
}

// TestDpkgStatusMatchesDpkgQuery parses this machine's real dpkg database and
// compares it with what dpkg-query itself reports.
func TestDpkgStatusMatchesDpkgQuery(t *testing.T) {
	b, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		testenv.Skip(t, "no dpkg database here: %v", err)
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Want} ${db:Status-Status} ${Package} ${Version} ${source:Package} ${source:Version}\n").Output()
	if err != nil {
		testenv.Skip(t, "dpkg-query: %v", err)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		want1, rest, _ := strings.Cut(line, " ")
		state, rest, _ := strings.Cut(rest, " ")
		if want1 == "deinstall" || want1 == "purge" || state == "not-installed" || state == "config-files" {
			continue
		}
		want = append(want, rest)
	}
	pkgs, err := parseDpkgStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, strings.Join([]string{p.Name, p.Version, p.SrcName, p.SrcVersion}, " "))
	}
	sort.Strings(got)
	sort.Strings(want)
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("parsed %d packages, dpkg-query lists %d installed\n got %v\nwant %v", len(got), len(want), got, want)
	}
}

func TestGoBinaryReadsThisTestBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	a := goBinary{}
	if !a.Required("usr/bin/x", info) {
		t.Fatal("executable not required")
	}
	if a.Required("usr/share/doc/x", fileInfo{name: "x", size: info.Size(), mode: 0o644}) {
		t.Error("non-executable file required")
	}
	res, err := a.Analyze(context.Background(), Input{Path: "usr/bin/x", Content: content, Info: info})
	if err != nil {
		t.Fatal(err)
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	want := map[string]string{"stdlib": "v" + strings.TrimPrefix(bi.GoVersion, "go")}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		want[d.Path] = d.Version
	}
	got := map[string]string{}
	for _, p := range res.Packages {
		got[p.Name] = p.Version
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if _, err := a.Analyze(context.Background(), Input{Path: "x", Content: []byte("#!/bin/sh\necho hi\n")}); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("shell script: err = %v, want ErrNotApplicable", err)
	}
	if _, err := a.Analyze(context.Background(), Input{Path: "x", Content: append([]byte("\x7fELF"), make([]byte, 100)...)}); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("broken ELF: err = %v, want ErrNotApplicable", err)
	}
}

func TestNpm(t *testing.T) {
	a := npmPackage{}
	for p, want := range map[string]bool{
		"app/node_modules/lodash/package.json":           true,
		"app/node_modules/@types/node/package.json":      true,
		"app/node_modules/a/node_modules/b/package.json": true,
		"app/package.json":                               false,
		"app/node_modules/lodash/fp/package.json":        false,
		"app/node_modules/lodash/package.json.bak":       false,
		"usr/lib/node_modules/npm/package.json":          true,
		"app/node_modules/@scope/pkg/sub/package.json":   false,
		"app/node_modules/package.json":                  false,
	} {
		if got := a.Required(p, nil); got != want {
			t.Errorf("Required(%s) = %v, want %v", p, got, want)
		}
	}
	res, err := a.Analyze(context.Background(), Input{Path: "n/node_modules/lodash/package.json", Layer: "sha256:1", Content: []byte(`{"name":"lodash","version":"4.17.20","license":"MIT"}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{Type: TypeNpm, Name: "lodash", Version: "4.17.20", Location: Location{Layer: "sha256:1", Path: "n/node_modules/lodash/package.json"}}}
	if !reflect.DeepEqual(res.Packages, want) {
		t.Errorf("got %+v, want %+v", res.Packages, want)
	}
	if _, err := a.Analyze(context.Background(), Input{Path: "x", Content: []byte(`{"name":`)}); err == nil || errors.Is(err, ErrNotApplicable) {
		t.Errorf("broken json: err = %v, want a parse error", err)
	}
}

func TestRunOnRootFS(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release":                           "ID=debian\nVERSION_ID=\"12\"\n",
		"etc/debian_version":                       "12.8\n",
		"var/lib/dpkg/status":                      dpkgSample,
		"app/node_modules/minimist/package.json":   `{"name":"minimist","version":"1.2.5"}`,
		"app/node_modules/broken/package.json":     `{"name":`,
		"var/lib/dpkg/status.d/base-files":         "Package: base-files\nVersion: 12.4+deb12u8\n",
		"var/lib/dpkg/status.d/base-files.md5sums": "x",
	}
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	im, err := image.Open(context.Background(), root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inv, err := Run(context.Background(), im, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inv.OS, &OS{Family: "debian", Name: "12.8"}) {
		t.Errorf("os = %+v", inv.OS)
	}
	var got []string
	for _, p := range inv.Packages {
		got = append(got, p.Type+"/"+p.Name+"@"+p.Version+" "+p.Location.Path)
	}
	want := []string{
		"dpkg/base-files@12.4+deb12u8 var/lib/dpkg/status.d/base-files",
		"dpkg/libssl3@3.0.15-1~deb12u1 var/lib/dpkg/status",
		"dpkg/perl-base@5.36.0-7+deb12u3 var/lib/dpkg/status",
		"dpkg/tzdata@2026b-0+deb12u1 var/lib/dpkg/status",
		"npm/minimist@1.2.5 app/node_modules/minimist/package.json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("packages\n got %v\nwant %v", got, want)
	}
}

func FuzzDpkgStatus(f *testing.F) {
	f.Add([]byte(dpkgSample))
	f.Add([]byte("Package: a\nVersion: 1\nSource: b (2)\n\n\nPackage: c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseDpkgStatus(b)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}

func FuzzOSRelease(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Add([]byte("ID='x\nVERSION_ID=\"\n#\n="))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := osRelease{}.Analyze(context.Background(), Input{Path: pathOSRelease, Content: b})
		if err == nil && (res.OS == nil || res.OS.Family == "") {
			t.Fatalf("no error and no OS family: %+v", res)
		}
	})
}

func FuzzGoBinary(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("MZ\x90\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = goBinary{}.Analyze(context.Background(), Input{Path: "x", Content: b})
	})
}

// TestRunDropsPackagesOwnedByOSPackages: language packages in files that a
// dpkg package installed belong to that package.
func TestRunDropsPackagesOwnedByOSPackages(t *testing.T) {
	root := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"etc/os-release":                                              []byte("ID=debian\nVERSION_ID=12\n"),
		"var/lib/dpkg/status":                                         []byte("Package: python3-yaml\nStatus: install ok installed\nSource: pyyaml\nVersion: 6.0-3+b2\n\nPackage: gotool\nStatus: install ok installed\nVersion: 1.0\n"),
		"var/lib/dpkg/info/python3-yaml.list":                         []byte("/.\n/usr\n/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info\n/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA\n"),
		"var/lib/dpkg/info/gotool.list":                               []byte("/usr/bin/gotool\n"),
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA": []byte("Name: PyYAML\nVersion: 6.0\n"),
		"usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA": []byte("Name: requests\nVersion: 2.31.0\n"),
		"usr/bin/gotool":    goBin,
		"usr/local/bin/app": goBin,
	}
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	im, err := image.Open(context.Background(), root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inv, err := Run(context.Background(), im, Options{})
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]bool{}
	for _, p := range inv.Packages {
		where[p.Type+" "+p.Location.Path] = true
	}
	for _, want := range []string{"dpkg var/lib/dpkg/status", "python usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA", "gobinary usr/local/bin/app"} {
		if !where[want] {
			t.Errorf("missing %s in %v", want, where)
		}
	}
	for _, unwanted := range []string{"python usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", "gobinary usr/bin/gotool"} {
		if where[unwanted] {
			t.Errorf("%s is owned by a dpkg package but was reported", unwanted)
		}
	}
}

// TestGoBinaryExperimentVersion builds a binary with GOEXPERIMENT=jsonv2:
// Go >= 1.26 records its version as "go1.26.x-X:jsonv2", which must still
// give the stdlib package the toolchain's release.
func TestGoBinaryExperimentVersion(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module example.com/exp\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "exp")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOEXPERIMENT=jsonv2", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build with GOEXPERIMENT=jsonv2: %v\n%s", err, b)
	}
	content, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bi.GoVersion, "X:jsonv2") {
		t.Fatalf("binary records %q, want an experiment suffix", bi.GoVersion)
	}
	res, err := goBinary{}.Analyze(context.Background(), Input{Path: "exp", Content: content})
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimPrefix(runtime.Version(), "go")
	release, _, _ = strings.Cut(release, " ")
	release, _, _ = strings.Cut(release, "-")
	var got string
	for _, p := range res.Packages {
		if p.Name == "stdlib" {
			got = p.Version
		}
	}
	if got != "v"+release {
		t.Errorf("stdlib version = %q, want %q (binary records %q)", got, "v"+release, bi.GoVersion)
	}
	for in, want := range map[string]string{
		"go1.26.0-X:jsonv2":  "1.26.0",
		"go1.22.1 X:loopvar": "1.22.1",
		"go1.21.5":           "1.21.5",
		"devel go1.27-abc":   "",
		"go":                 "",
	} {
		if got := goToolchainVersion(in); got != want {
			t.Errorf("goToolchainVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// runOnFiles writes files into a root filesystem and runs every analyzer.
func runOnFiles(t *testing.T, files map[string][]byte) *Inventory {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	im, err := image.Open(context.Background(), root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inv, err := Run(context.Background(), im, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func packageSet(inv *Inventory) map[string]bool {
	got := map[string]bool{}
	for _, p := range inv.Packages {
		got[p.Type+" "+p.Name+"@"+p.Version+" "+p.Location.Path] = true
	}
	return got
}

// TestDistrolessStatusDOwnership: a distroless image has status.d/<pkg>
// and status.d/<pkg>.md5sums but no info/*.list; the npm package a Debian
// package installed is the Debian package's, not a second finding.
func TestDistrolessStatusDOwnership(t *testing.T) {
	inv := runOnFiles(t, map[string][]byte{
		"etc/os-release":                            []byte("ID=debian\nVERSION_ID=12\n"),
		"var/lib/dpkg/status.d/node-semver":         []byte("Package: node-semver\nVersion: 7.3.8+~7.3.9-1\nMaintainer: Debian Javascript Maintainers <pkg-javascript-devel@lists.alioth.debian.org>\nArchitecture: all\n"),
		"var/lib/dpkg/status.d/node-semver.md5sums": []byte("0123456789abcdef0123456789abcdef  usr/share/nodejs/semver/package.json\nfedcba9876543210fedcba9876543210  usr/share/doc/node-semver/copyright\n"),
		"usr/share/nodejs/semver/package.json":      []byte(`{"name":"semver","version":"7.3.8"}`),
		"app/node_modules/semver/package.json":      []byte(`{"name":"semver","version":"7.3.8"}`),
	})
	got := packageSet(inv)
	for _, want := range []string{
		"dpkg node-semver@7.3.8+~7.3.9-1 var/lib/dpkg/status.d/node-semver",
		"npm semver@7.3.8 app/node_modules/semver/package.json",
	} {
		if !got[want] {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	if got["npm semver@7.3.8 usr/share/nodejs/semver/package.json"] {
		t.Errorf("npm package owned by the Debian package node-semver reported too: %v", got)
	}
	if len(got) != 2 {
		t.Errorf("got %d packages, want 2: %v", len(got), got)
	}
}

// TestThirdPartyDebBundledNpm: NodeSource's nodejs .deb bundles npm and its
// dependencies; Debian's advisories do not cover them, so they are scanned,
// while a Debian package's bundled npm packages stay hidden.
func TestThirdPartyDebBundledNpm(t *testing.T) {
	status := "Package: nodejs\nStatus: install ok installed\nMaintainer: NodeSource Support <support@nodesource.com>\nArchitecture: amd64\nVersion: 20.11.0-1nodesource1\n\n" +
		"Package: node-ip\nStatus: install ok installed\nMaintainer: Debian Javascript Maintainers <pkg-javascript-devel@lists.alioth.debian.org>\nVersion: 1.1.8-2\n\n" +
		"Package: ubuntu-thing\nStatus: install ok installed\nMaintainer: Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>\nOriginal-Maintainer: Someone <someone@example.org>\nVersion: 1.0\n"
	inv := runOnFiles(t, map[string][]byte{
		"etc/os-release":                                        []byte("ID=debian\nVERSION_ID=12\n"),
		"var/lib/dpkg/status":                                   []byte(status),
		"var/lib/dpkg/info/nodejs:amd64.list":                   []byte("/usr/lib/node_modules/npm/package.json\n/usr/lib/node_modules/npm/node_modules/ip/package.json\n"),
		"var/lib/dpkg/info/node-ip.list":                        []byte("/usr/share/nodejs/ip/package.json\n"),
		"var/lib/dpkg/info/ubuntu-thing.list":                   []byte("/usr/share/thing/node_modules/ms/package.json\n"),
		"usr/lib/node_modules/npm/package.json":                 []byte(`{"name":"npm","version":"10.2.4"}`),
		"usr/lib/node_modules/npm/node_modules/ip/package.json": []byte(`{"name":"ip","version":"2.0.0"}`),
		"usr/share/nodejs/ip/package.json":                      []byte(`{"name":"ip","version":"1.1.8"}`),
		"usr/share/thing/node_modules/ms/package.json":          []byte(`{"name":"ms","version":"2.0.0"}`),
	})
	got := packageSet(inv)
	for _, want := range []string{
		"npm npm@10.2.4 usr/lib/node_modules/npm/package.json",
		"npm ip@2.0.0 usr/lib/node_modules/npm/node_modules/ip/package.json",
		"dpkg nodejs@20.11.0-1nodesource1 var/lib/dpkg/status",
	} {
		if !got[want] {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	for _, unwanted := range []string{
		"npm ip@1.1.8 usr/share/nodejs/ip/package.json",
		"npm ms@2.0.0 usr/share/thing/node_modules/ms/package.json",
	} {
		if got[unwanted] {
			t.Errorf("%s is owned by a distribution package but was reported", unwanted)
		}
	}
	for _, tt := range []struct {
		maintainer, original string
		want                 bool
	}{
		{"NodeSource Support <support@nodesource.com>", "", true},
		{"Docker <support@docker.com>", "", true},
		{"Google Cloud CLI Authors <https://code.google.com/p/google-cloud-sdk/>", "", true},
		{"Debian Python Team <team+python@tracker.debian.org>", "", false},
		{"Niko Tyni <ntyni@debian.org>", "", false},
		{"Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>", "Jane <jane@example.org>", false},
		{"Someone <x@example.org>", "Debian X <debian-x@lists.debian.org>", false},
		{"Evil <x@notdebian.org>", "", true},
		{"", "", false},
	} {
		if got := thirdPartyDeb(tt.maintainer, tt.original); got != tt.want {
			t.Errorf("thirdPartyDeb(%q, %q) = %v, want %v", tt.maintainer, tt.original, got, tt.want)
		}
	}
}

// wantError fails t unless err is as wanted: nil for want "", else an
// error containing want. It reports whether the case goes on (no error).
func wantError(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	return false
}
