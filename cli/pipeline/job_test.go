package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RunJob loads the policy and the ignore file, writes every report — also
// when the protect then fails — and appends the Markdown.
func TestRunJobWritesReportsOnFailedProtect(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	ign := filepath.Join(dir, "ignore.yaml")
	if err := os.WriteFile(pol, []byte("ci:\n  - name: tasks\n    compliance: {checks: {TG-TASK-004: block}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ign, []byte("ignore:\n  - id: TG-TASK-004\n    reason: read-only root next sprint\n    expires: 2999-01-31\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(md, []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := ReportFiles{JUnit: filepath.Join(dir, "r/junit.xml"), SARIF: filepath.Join(dir, "r.sarif"), JSON: filepath.Join(dir, "r.json"), Markdown: md}
	rep, err := RunJob(context.Background(), JobOptions{
		Run:        Options{TaskPath: "../../testdata/taskdef/no-entrypoint.json", ProtectOutput: filepath.Join(dir, "protected.json")},
		PolicyFile: pol, IgnoreFile: ign, Reports: files,
	})
	if !errors.Is(err, ErrProtect) || rep == nil {
		t.Fatalf("err %v, report %v; want ErrProtect with the report", err, rep)
	}
	if rep.Policy.Source != "file" || rep.Policy.Rule != "tasks" || rep.Result != "passed" || rep.Summary.Accepted == 0 {
		t.Errorf("report: policy %+v result %s summary %+v", rep.Policy, rep.Result, rep.Summary)
	}
	for _, p := range []string{files.JUnit, files.SARIF, files.JSON} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", p, err)
		}
	}
	b, _ := os.ReadFile(md)
	if !strings.HasPrefix(string(b), "earlier step\n") || !strings.Contains(string(b), "accepted: read-only root next sprint") {
		t.Errorf("Markdown not appended with the acceptance:\n%s", b)
	}
	sarif, _ := os.ReadFile(files.SARIF)
	if !strings.Contains(string(sarif), `"kind": "external"`) || !strings.Contains(string(sarif), `"uri": "`+ign+`"`) {
		t.Errorf("SARIF lacks the suppression pointing at the ignore file:\n%s", sarif)
	}

	if _, err := RunJob(context.Background(), JobOptions{Run: Options{TaskPath: "x.json"}, Console: &ConsoleOptions{URL: "https://127.0.0.1:1"}}); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("console without credentials: %v", err)
	}
}
