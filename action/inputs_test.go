package action

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/taskguard/taskguard/internal/testenv"
)

// otherSteps are the inputs the composite's other steps consume (install,
// the DB's cache); the program gets cache-dir from the db step.
var otherSteps = map[string]string{"version": "install", "releases-url": "install", "cache": "restore-db", "cache-dir": "db"}

// inputRead finds the inputs action.go reads.
var inputRead = regexp.MustCompile(`(?:GetInput\(|boolIn\(|listInput\(gha, |portsInput\(gha, )"([a-z-]+)"`)

// TestEveryInputReachesTheProgram: each input action.yml declares reaches
// taskguard-action's step as INPUT_<NAME>, and each input the program reads
// is declared. GitHub gives a composite action's steps no INPUT_ variables
// of their own, so a missing line drops the input silently there; neither
// the unit tests (they set the variables directly) nor act (it sets them
// for composite steps too, nektos/act#2874) would notice.
func TestEveryInputReachesTheProgram(t *testing.T) {
	root := testenv.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Inputs map[string]struct{} `json:"inputs"`
	}
	if err := yaml.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	steps := actionSteps(t)
	run := steps["run"]
	for name := range meta.Inputs {
		if step, ok := otherSteps[name]; ok {
			s := steps[step]
			uses := regexp.MustCompile(`inputs\.` + regexp.QuoteMeta(name) + `(?:[^a-z-]|$)`)
			if !uses.MatchString(s.If + s.Run + fmt.Sprint(slices.Collect(maps.Values(s.Env)), slices.Collect(maps.Values(s.With)))) {
				t.Errorf("input %q: step %q does not read it", name, step)
			}
			continue
		}
		key := "INPUT_" + strings.ToUpper(name)
		if want := "${{ inputs." + name + " }}"; run.Env[key] != want {
			t.Errorf("input %q: the run step has %s=%q, want %q", name, key, run.Env[key], want)
		}
	}
	src, err := os.ReadFile(filepath.Join(root, "action", "action.go"))
	if err != nil {
		t.Fatal(err)
	}
	read := inputRead.FindAllStringSubmatch(string(src), -1)
	if len(read) < 30 {
		t.Fatalf("found only %d inputs read in action.go: the pattern no longer matches how it reads them", len(read))
	}
	for _, m := range read {
		if _, ok := meta.Inputs[m[1]]; !ok {
			t.Errorf("action.go reads input %q, which action.yml does not declare", m[1])
		}
	}
}
