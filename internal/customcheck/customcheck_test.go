package customcheck

import (
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

func TestCompile(t *testing.T) {
	got, err := Compile([]policy.CustomCheck{
		{ID: "A", Title: "t", Severity: "high", FileAbsent: "/bin/*sh", Remediation: "r"},
		{ID: "B", Title: "u", Severity: "low", Env: &policy.EnvCondition{Name: "NODE_ENV", Match: "^production$"}},
		{ID: "C", Title: "v", Severity: "medium", Env: &policy.EnvCondition{Name: "PORT"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Severity != "HIGH" || got[0].FileAbsent != "/bin/*sh" || got[0].Family != "image" || got[0].Remediation != "r" {
		t.Errorf("file check: %+v", got[0])
	}
	if got[1].EnvName != "NODE_ENV" || !got[1].EnvMatch.MatchString("production") || got[1].EnvMatch.MatchString("dev") {
		t.Errorf("env check: %+v", got[1])
	}
	if got[2].EnvMatch != nil {
		t.Errorf("an empty match must mean any value: %+v", got[2])
	}
	if _, err := Compile([]policy.CustomCheck{{ID: "X", Env: &policy.EnvCondition{Name: "A", Match: "("}}}); err == nil || !strings.Contains(err.Error(), "custom check X") {
		t.Errorf("bad regexp: %v", err)
	}
}
