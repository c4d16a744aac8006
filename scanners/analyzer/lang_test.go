package analyzer

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/scanners/image"

	"github.com/taskguard/taskguard/internal/testenv"
)

const apkSample = `C:Q1Ef0zdZ9vpnPsIWtSDdXxdJTGQ8A=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1698960932
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755

P:libcrypto3
V:3.1.4-r1
A:x86_64
o:openssl
`

func TestAPKInstalled(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []Package
		wantErr string
	}{
		{"installed", apkSample, []Package{
			{Type: TypeAPK, Name: "musl", Version: "1.2.4-r2", SrcName: "musl", SrcVersion: "1.2.4-r2"},
			{Type: TypeAPK, Name: "libcrypto3", Version: "3.1.4-r1", SrcName: "openssl", SrcVersion: "3.1.4-r1"},
		}, ""},
		{"no version", "P:musl\n\n", nil, "without"},
		{"not a field", "Package: musl\n", nil, "KEY:value"},
		{"empty", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := parseAPKInstalled([]byte(tt.content))
			if !wantError(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAPKOwnedFiles(t *testing.T) {
	_, owned, err := parseAPKInstalled([]byte(apkSample + "F:usr/lib/go-app\nR:server\nR:../x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"lib/ld-musl-x86_64.so.1", "usr/lib/go-app/server", "usr/lib/x"}; !reflect.DeepEqual(owned, want) {
		t.Errorf("owned = %q, want %q", owned, want)
	}
}

func TestPythonRequired(t *testing.T) {
	a := pythonPackage{}
	for p, want := range map[string]bool{
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA":      true,
		"usr/lib/python3/dist-packages/PyJWT-2.6.0.egg-info":               true,
		"usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO":       true,
		"usr/lib/python3/site-packages/x-1.0-py3.11.egg/EGG-INFO/PKG-INFO": true,
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/RECORD":        false,
		"srv/METADATA": false,
	} {
		if got := a.Required(p, nil); got != want {
			t.Errorf("Required(%s) = %v, want %v", p, got, want)
		}
	}
}

// TestPythonMatchesImportlib reads this machine's Debian Python packages
// and compares them with what Python's importlib.metadata finds there.
func TestPythonMatchesImportlib(t *testing.T) {
	const site = "/usr/lib/python3/dist-packages"
	py := "/usr/bin/python3"
	if _, err := os.Stat(site); err != nil {
		testenv.Skip(t, "no %s here", site)
	}
	if _, err := os.Stat(py); err != nil {
		testenv.Skip(t, "no %s here", py)
	}
	out, err := exec.Command(py, "-c", `import importlib.metadata as m, sys
for d in m.distributions(path=[sys.argv[1]]):
    print(d.metadata["Name"] + " " + d.version)`, site).Output()
	if err != nil {
		testenv.Skip(t, "importlib.metadata: %v", err)
	}
	want := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(want)
	im, err := image.Open(context.Background(), site, image.Options{Kind: image.KindRootFS})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inv, err := Run(context.Background(), im, Options{Analyzers: []Analyzer{pythonPackage{}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range inv.Packages {
		got = append(got, p.Name+" "+p.Version)
	}
	sort.Strings(got)
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("got %d distributions, importlib finds %d\n got %q\nwant %q", len(got), len(want), got, want)
	}
}

func FuzzAPKInstalled(f *testing.F) {
	f.Add([]byte(apkSample))
	f.Add([]byte("P:a\nV:1\n\nP:b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, _, err := parseAPKInstalled(b)
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

func FuzzCoreMetadata(f *testing.F) {
	f.Add([]byte("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n\nbody"))
	f.Add([]byte("Name:\nVersion: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, version, err := parseCoreMetadata(b)
		if err == nil && (name == "" || version == "") {
			t.Fatalf("no error and empty name or version: %q %q", name, version)
		}
	})
}
