package analyzer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
		{"debian", "etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n", &OS{"debian", "12"}, false},
		{"ubuntu", "usr/lib/os-release", "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n", &OS{"ubuntu", "22.04"}, false},
		{"alpine", "etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n", &OS{"alpine", "3.19.1"}, false},
		{"rhel alias", "etc/os-release", "ID=\"rhel\"\nVERSION_ID=\"9.3\"\n", &OS{"redhat", "9.3"}, false},
		{"debian sid", "etc/os-release", "ID=debian\nVERSION_CODENAME=trixie\n", &OS{"debian", "trixie"}, false},
		{"alpine-release", "etc/alpine-release", "3.20.0\n", &OS{"alpine", "3.20.0"}, false},
		{"debian_version", "etc/debian_version", "12.5\n", &OS{debianPointRelease, "12.5"}, false},
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
		{"no version", "Package: x\nStatus: install ok installed\n", nil, "no Version"},
		{"garbage line", "Package: x\nthis is not a field\n", nil, "not a field"},
		{"bad source", "Package: x\nVersion: 1\nSource: y 2\n", nil, "malformed Source"},
		{"stray continuation", " continued\n", nil, "outside a field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDpkgStatus([]byte(tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
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
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status} ${Package} ${Version} ${source:Package} ${source:Version}\n").Output()
	if err != nil {
		testenv.Skip(t, "dpkg-query: %v", err)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if rest, ok := strings.CutPrefix(line, "installed "); ok {
			want = append(want, rest)
		}
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
