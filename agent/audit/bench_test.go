package audit

import (
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// BenchmarkExecAuditCut: what the audit of a refused exec with the longest
// argv the supervisor reads (1 MiB) costs the launcher's supervisor
// thread: the message and the detail's argv, both cut, from one Command
// (one SHA-256 of the argv). agent/README.md compares it with the same
// work before the mark carried a digest.
func BenchmarkExecAuditCut(b *testing.B) {
	d := policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonDenied, Entry: "nc"}
	long := longArgv()
	b.SetBytes(int64(len(long) * 4096))
	for b.Loop() {
		cmd := NewCommand(long)
		_ = ExecCommandMessage("/usr/bin/nc", "/bin/sh", cmd, d, Blocked)
		_ = cmd.Cut(MaxArgv)
	}
}
