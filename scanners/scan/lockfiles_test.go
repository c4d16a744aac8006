package scan

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/mod/semver"

	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
)

// osvExpected reads the corpus's Go OSV reports and returns, for module at
// version, the IDs a scan must report (the CVE alias when there is one),
// evaluating the SEMVER ranges with x/mod/semver: a cross-check that does
// not go through the DB or its matcher.
func osvExpected(t *testing.T, dir, module, version string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var osv struct {
			ID       string   `json:"id"`
			Aliases  []string `json:"aliases"`
			Affected []struct {
				Package struct{ Name string } `json:"package"`
				Ranges  []struct {
					Type   string
					Events []map[string]string
				} `json:"ranges"`
			} `json:"affected"`
		}
		if err := json.Unmarshal(b, &osv); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		hit := false
		for _, a := range osv.Affected {
			if a.Package.Name != module {
				continue
			}
			for _, r := range a.Ranges {
				if r.Type != "SEMVER" {
					continue
				}
				in := false
				for _, ev := range r.Events {
					if v, ok := ev["introduced"]; ok && (v == "0" || semver.Compare(version, "v"+v) >= 0) {
						in = true
					}
					if v, ok := ev["fixed"]; ok && semver.Compare(version, "v"+v) >= 0 {
						in = false
					}
				}
				hit = hit || in
			}
		}
		if !hit {
			continue
		}
		id := osv.ID
		for _, al := range osv.Aliases {
			if strings.HasPrefix(al, "CVE-") {
				id = al
				break
			}
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TestGoModCrossCheck scans a go.mod written by the go command (with a
// local replace, which has no version to match) and checks its findings
// against the corpus's OSV reports evaluated by hand.
func TestGoModCrossCheck(t *testing.T) {
	root := t.TempDir()
	app := filepath.Join(root, "src", "app")
	if err := os.MkdirAll(filepath.Join(root, "src", "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "src", "local", "go.mod"), []byte("module example.com/local\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"mod", "init", "example.com/app"},
		{"get", "golang.org/x/text@v0.3.5"},
		{"mod", "edit", "-require", "example.com/local@v0.0.0", "-replace", "example.com/local=../local"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, b)
		}
	}
	db := openCorpusDB(t)
	img, err := image.Open(context.Background(), root, image.Options{Kind: image.KindRootFS})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	rep, err := Opened(context.Background(), img, db, Options{Analyzers: append(analyzer.All(), analyzer.Lockfiles()...)})
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, p := range rep.Packages {
		pkgs = append(pkgs, p.Type+" "+p.Name+"@"+p.Version+" "+p.Location.Path)
	}
	if want := []string{"gomod golang.org/x/text@v0.3.5 src/app/go.mod"}; !reflect.DeepEqual(pkgs, want) {
		t.Errorf("packages %q, want %q", pkgs, want)
	}
	var got []string
	for _, f := range rep.Findings {
		if f.PkgType != analyzer.TypeGoMod || f.PkgName != "golang.org/x/text" {
			t.Errorf("unexpected finding %+v", f)
			continue
		}
		got = append(got, f.VulnerabilityID)
	}
	sort.Strings(got)
	want := osvExpected(t, filepath.Join(advisoriesDir(t), "go-osv"), "golang.org/x/text", "v0.3.5")
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("go.mod findings %q, the corpus says %q", got, want)
	}
}
