package action

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/taskguard/taskguard/internal/testenv"
)

type compositeStep struct {
	ID   string            `json:"id"`
	If   string            `json:"if"`
	Uses string            `json:"uses"`
	Run  string            `json:"run"`
	Env  map[string]string `json:"env"`
	With map[string]string `json:"with"`
}

// actionSteps reads action.yml's composite steps.
func actionSteps(t *testing.T) map[string]compositeStep {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Inputs map[string]struct {
			Default string `json:"default"`
		} `json:"inputs"`
		Runs struct {
			Steps []compositeStep `json:"steps"`
		} `json:"runs"`
	}
	if err := yaml.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Inputs["cache"].Default != "true" {
		t.Errorf("input cache defaults to %q, want true", meta.Inputs["cache"].Default)
	}
	steps := map[string]compositeStep{}
	for _, s := range meta.Runs.Steps {
		steps[s.ID] = s
	}
	return steps
}

// The DB cache: restored through actions/cache by day, saved under the day
// of the DB's NextUpdate, which the db-key step reads from the DB's own
// metadata (run here on a DB built from the real advisories).
func TestDBCacheKey(t *testing.T) {
	steps := actionSteps(t)
	restore, key := steps["restore-db"], steps["db-key"]
	if !strings.HasPrefix(restore.Uses, "actions/cache/restore@") || restore.If != "inputs.cache == 'true'" ||
		restore.With["restore-keys"] != "taskguard-db-${{ runner.os }}-" || restore.With["path"] != "${{ steps.db.outputs.dir }}" {
		t.Errorf("restore step: %+v", restore)
	}
	if key.Run == "" {
		t.Fatal("no db-key step")
	}
	db := vulnDB(t)
	var meta struct{ NextUpdate time.Time }
	b, err := os.ReadFile(filepath.Join(db, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil || meta.NextUpdate.IsZero() {
		t.Fatalf("metadata.json: %v %s", err, b)
	}
	for _, tt := range []struct {
		name, dir, want string
	}{
		{"a DB", db, "key=taskguard-db-Linux-" + meta.NextUpdate.UTC().Format(time.DateOnly) + "\n"},
		{"no DB yet", t.TempDir(), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "output")
			cmd := exec.Command("bash", "-e", "-c", key.Run)
			cmd.Env = append(os.Environ(), "DB_DIR="+tt.dir, "GITHUB_OUTPUT="+out, "RUNNER_OS=Linux")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("db-key step: %v\n%s", err, b)
			}
			got, _ := os.ReadFile(out)
			if string(got) != tt.want {
				t.Errorf("db-key wrote %q, want %q", got, tt.want)
			}
		})
	}
	var save compositeStep
	for _, s := range steps {
		if strings.HasPrefix(s.Uses, "actions/cache/save@") {
			save = s
		}
	}
	if save.With["key"] != "${{ steps.db-key.outputs.key }}" || !strings.Contains(save.If, "steps.db-key.outputs.key != steps.restore-db.outputs.cache-matched-key") {
		t.Errorf("save step: %+v", save)
	}
}
