package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
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
