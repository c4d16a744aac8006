package ruleops

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestCorazaVersionIsTheCopiedOne fails when the module requires (go.mod)
// or was built with (build info) a Coraza release other than the one the
// copies come from.
func TestCorazaVersionIsTheCopiedOne(t *testing.T) {
	required := requiredVersion(t, corazaModule)
	if required != CorazaVersion {
		t.Errorf("go.mod requires %s %s, but ruleops was copied from %s: compare internal/transformations, "+
			"internal/operators and internal/strings of the new release with these copies, update them, "+
			"then CorazaVersion, doc.go and NOTICE", corazaModule, required, CorazaVersion)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path != corazaModule {
				continue
			}
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			if v != CorazaVersion {
				t.Errorf("built with %s %s (replace %+v), but ruleops was copied from %s", corazaModule, d.Version, d.Replace, CorazaVersion)
			}
		}
	}
	for _, f := range []string{"doc.go", "NOTICE"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "Coraza "+CorazaVersion) && !strings.Contains(string(b), "Coraza WAF "+CorazaVersion) {
			t.Errorf("%s does not name Coraza %s", f, CorazaVersion)
		}
	}
}

// requiredVersion reads the version of module required by the go.mod
// above this package.
func requiredVersion(t *testing.T, module string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	v, ok := requirement(string(b), module)
	if !ok {
		t.Fatalf("go.mod does not require %s", module)
	}
	return v
}

// requirement finds module's version in the require lines of a go.mod
// (single-line or in a block).
func requirement(gomod, module string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(gomod))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) == 2 && fields[0] == module {
			return fields[1], true
		}
	}
	return "", false
}

// TestRequirement is the negative control: the check sees another version.
func TestRequirement(t *testing.T) {
	for _, tc := range []struct{ gomod, want string }{
		{"module x\n\nrequire (\n\tgithub.com/corazawaf/coraza/v3 v3.9.0\n)\n", "v3.9.0"},
		{"module x\nrequire github.com/corazawaf/coraza/v3 v3.8.1 // indirect\n", "v3.8.1"},
		{"module x\nrequire github.com/corazawaf/coraza-coreruleset/v4 v4.25.0\n", ""},
	} {
		if got, _ := requirement(tc.gomod, corazaModule); got != tc.want {
			t.Errorf("requirement(%q) = %q, want %q", tc.gomod, got, tc.want)
		}
	}
}
