package pipeline

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/scanners/report"
)

func TestDefaultPolicy(t *testing.T) {
	p, err := DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	r := p.CIFor("any/image:1")
	if r == nil || r.Vulnerabilities.BlockThreshold != "CRITICAL" || !r.Vulnerabilities.OnlyFixed || r.Compliance.Checks["TG-TASK-001"] != "block" {
		t.Fatalf("default rule = %+v", r)
	}
}

func TestRunNeedsSomethingToCheck(t *testing.T) {
	if _, err := Run(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "nothing to check") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Run(context.Background(), Options{Image: "x"}); err == nil || !strings.Contains(err.Error(), "no vulnerability DB") {
		t.Fatalf("err = %v", err)
	}
}

// A blocked gate does not protect the task definition, and says so.
func TestBlockedGateDoesNotProtect(t *testing.T) {
	out := t.TempDir() + "/protected.json"
	r, err := Run(context.Background(), Options{TaskPath: "../../testdata/taskdef/multi-container.json", ProtectOutput: out})
	if err != nil {
		t.Fatal(err)
	}
	// multi-container.json has a web container without a user and a
	// writable root filesystem, but nothing the default policy blocks.
	if r.Result != "passed" || r.ProtectedTask != out {
		t.Fatalf("result %s, protected %q, reasons %v", r.Result, r.ProtectedTask, r.BlockReasons)
	}
	r, err = Run(context.Background(), Options{TaskPath: "../../testdata/taskdef/multi-container.json", ProtectOutput: out + ".2",
		Ignore: nil, Policy: mustPolicy(t, "ci:\n  - name: r\n    compliance: {checks: {TG-TASK-004: block}}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != "blocked" || r.ProtectedTask != "" || !strings.Contains(strings.Join(r.Warnings, " "), "not protected because the gate blocked") {
		t.Fatalf("blocked run: %+v", r)
	}
}

func mustPolicy(t *testing.T, y string) *policy.Policy {
	t.Helper()
	p, err := policy.ParsePolicy([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A failed protect returns the finished report with the error, so that the
// caller can still write it.
func TestFailedProtectKeepsTheReport(t *testing.T) {
	out := t.TempDir() + "/protected.json"
	r, err := Run(context.Background(), Options{TaskPath: "../../testdata/taskdef/no-entrypoint.json", ProtectOutput: out})
	if !errors.Is(err, ErrProtect) || !strings.Contains(err.Error(), "has no entryPoint") {
		t.Fatalf("err = %v, want ErrProtect with the cause", err)
	}
	if r == nil || r.Task == nil || r.Result != "passed" || r.ProtectedTask != "" || !strings.Contains(strings.Join(r.Warnings, " "), "was not protected: protect") {
		t.Fatalf("report = %+v", r)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("protected task written: %v", err)
	}
}

// An exception of the policy and one of the ignore file are told apart.
func TestAcceptanceSource(t *testing.T) {
	pol := mustPolicy(t, "ci:\n  - name: shop\n    compliance:\n      checks: {TG-TASK-004: block, TG-TASK-003: block}\n      exceptions: [{id: TG-TASK-004, reason: read-only root next sprint, expires: 2999-01-31}]\n")
	ign := []policy.Exception{{ID: "TG-TASK-003", Reason: "checked by the platform team"}}
	r, err := Run(context.Background(), Options{TaskPath: "../../testdata/taskdef/multi-container.json", Policy: pol, Ignore: ign, IgnoreFile: "ci/.taskguardignore"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*report.Acceptance{}
	for _, c := range r.Compliance {
		if c.Verdict.Accepted != nil {
			got[c.CheckID] = c.Verdict.Accepted
		}
	}
	if a := got["TG-TASK-004"]; a == nil || a.Source != report.AcceptedByPolicy || a.Location != "shop" || a.Expires != "2999-01-31" {
		t.Errorf("policy acceptance: %+v", a)
	}
	if a := got["TG-TASK-003"]; a == nil || a.Source != report.AcceptedByIgnoreFile || a.Location != "ci/.taskguardignore" || a.Expires != "" {
		t.Errorf("ignore-file acceptance: %+v", a)
	}
	if r.Result != "passed" || r.Summary.Accepted != 4 || len(got) != 2 || r.Summary.Blocked != 0 {
		t.Errorf("result %s, summary %+v", r.Result, r.Summary)
	}
}
