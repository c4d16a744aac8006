package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

func TestExecMessage(t *testing.T) {
	argv := []string{"mkdir", "test"}
	tests := []struct {
		name string
		d    policy.Decision
		want string
	}{
		{"denied prevent", policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonDenied, Entry: "mkdir"},
			"/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir test"},
		{"denied alert", policy.Decision{Effect: policy.EffectAlert, Reason: policy.ReasonDenied, Entry: "mkdir"},
			"/bin/mkdir launched from /bin/dash and is explicitly denied in the runtime rule (alert only). Full command: mkdir test"},
		{"not allowed prevent", policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonNotAllowed},
			"/bin/mkdir launched from /bin/dash and is not allowed by the runtime rule and is blocked. Full command: mkdir test"},
		{"not allowed alert", policy.Decision{Effect: policy.EffectAlert, Reason: policy.ReasonNotAllowed},
			"/bin/mkdir launched from /bin/dash and is not allowed by the runtime rule (alert only). Full command: mkdir test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExecMessage("/bin/mkdir", "/bin/dash", argv, tt.d); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
	if got := DNSMessage("yahoo.com"); got != "DNS resolution of suspicious name yahoo.com" {
		t.Errorf("dns message %q", got)
	}
}

// longArgv is the longest argv the supervisor reads: 256 strings, the
// name and 255 of 4,095 bytes (1 MiB with their NULs).
func longArgv() []string {
	argv := []string{"nc"}
	for i := 1; i < 256; i++ {
		argv = append(argv, strings.Repeat(fmt.Sprint(i%10), 4095))
	}
	return argv
}

func TestCutArgv(t *testing.T) {
	long := longArgv()
	tests := []struct {
		name  string
		argv  []string
		limit int
		want  []string
	}{
		{"small", []string{"mkdir", "test"}, MaxArgv, []string{"mkdir", "test"}},
		{"none", nil, MaxArgv, nil},
		{"exactly the limit", []string{"ab", "cd"}, 6, []string{"ab", "cd"}},
		{"one byte more", []string{"ab", "cd"}, 5, []string{"ab", "…[cut by the defender: 2 more bytes in 1 more argument; command sha256 " + cmdlineSum("ab", "cd") + "]"}},
		{"first string too long", []string{"abcdef", "g"}, 4, []string{"…[cut by the defender: 7 more bytes in 2 more arguments; command sha256 " + cmdlineSum("abcdef", "g") + "]"}},
		// "nc" and 15 strings of 4,095 bytes: 61,443 bytes with their
		// separators; a 16th would make 65,539.
		{"1 MiB", long, MaxArgv, append(slices.Clip(long[:16]), "…[cut by the defender: 982800 more bytes in 240 more arguments; command sha256 "+cmdlineSum(long...)+"]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CutArgv(tt.argv, tt.limit)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %d strings, the last of them %.80q; want %d, %.80q", len(got), got[max(0, len(got)-1):], len(tt.want), tt.want[max(0, len(tt.want)-1):])
			}
		})
	}
	if !slices.Equal(long, longArgv()) {
		t.Error("CutArgv changed the caller's argv")
	}
}

// TestExecMessageCut: a command that would make the message longer than
// MaxExecMessage keeps its first arguments, whole, and says what it left
// out; a message of exactly MaxExecMessage bytes is whole.
func TestExecMessageCut(t *testing.T) {
	d := policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonDenied, Entry: "nc"}
	head := "/usr/bin/nc launched from /bin/sh and is explicitly blocked in the runtime rule. Full command: "
	long := longArgv()
	got := ExecMessage("/usr/bin/nc", "/bin/sh", long, d)
	// "nc" and 3 strings of 4,095 bytes (12,291 bytes) fit in 16 KiB
	// with the head and the mark; a fourth does not.
	want := head + strings.Join(long[:4], " ") + " …[cut by the defender: 1031940 more bytes in 252 more arguments; command sha256 " + cmdlineSum(long...) + "]"
	if got != want {
		t.Errorf("got %d bytes ending %q, want %d ending %q", len(got), got[max(0, len(got)-80):], len(want), want[len(want)-80:])
	}
	if len(got) > MaxExecMessage {
		t.Errorf("message of %d bytes, the bound is %d", len(got), MaxExecMessage)
	}
	fits := []string{"nc", strings.Repeat("x", MaxExecMessage-len(head)-3)}
	if got := ExecMessage("/usr/bin/nc", "/bin/sh", fits, d); got != head+"nc "+fits[1] {
		t.Errorf("a message of exactly %d bytes was cut to %d", MaxExecMessage, len(got))
	}
	fits[1] += "x"
	if got := ExecMessage("/usr/bin/nc", "/bin/sh", fits, d); got != head+"nc …[cut by the defender: "+fmt.Sprint(len(fits[1]))+" more bytes in 1 more argument; command sha256 "+cmdlineSum(fits...)+"]" {
		t.Errorf("a message one byte too long: %.200q", got)
	}
}

// cmdlineSum is the hex SHA-256 of argv as /proc/PID/cmdline holds it.
func cmdlineSum(argv ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(argv, "\x00") + "\x00"))
	return hex.EncodeToString(sum[:])
}

// TestAggregateCutCommands: the sidecar folds audits of one message into
// one record with a count. Two refused commands of 1 MiB that differ only
// in their last argument (far past the cut) stay two audits, in the
// message and in process.argv; the same command twice is one audit with
// Count 2.
func TestAggregateCutCommands(t *testing.T) {
	d := policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonDenied, Entry: "nc"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(id string, argv []string) api.Audit {
		return api.Audit{ID: id, Time: t0, Kind: api.AuditProcess, Effect: d.Effect, Rule: "r", Container: "c",
			Message: ExecMessage("/usr/bin/nc", "/bin/sh", argv, d),
			Process: &api.ProcessDetail{Path: "/usr/bin/nc", Argv: CutArgv(argv, MaxArgv)}}
	}
	one, other := longArgv(), longArgv()
	other[len(other)-1] = strings.Repeat("z", len(other[len(other)-1]))
	if strings.Join(one[:16], " ") != strings.Join(other[:16], " ") {
		t.Fatal("the two commands differ before the cut")
	}
	a, b := mk("a", one), mk("b", other)
	if a.Message == b.Message || slices.Equal(a.Process.Argv, b.Process.Argv) {
		t.Fatal("two commands that differ past the cut read the same")
	}
	if got := Aggregate([]api.Audit{a, b}); len(got) != 2 || got[0].Count != 1 || got[1].Count != 1 {
		t.Errorf("two commands that differ past the cut: %d records (counts %v), want 2 of 1", len(got), counts(got))
	}
	if got := Aggregate([]api.Audit{a, mk("a2", longArgv())}); len(got) != 1 || got[0].Count != 2 {
		t.Errorf("the same command twice: %d records (counts %v), want 1 of 2", len(got), counts(got))
	}
}

func counts(audits []api.Audit) []int {
	var n []int
	for _, a := range audits {
		n = append(n, a.Count)
	}
	return n
}

// TestCutText: a field the defender cuts keeps within the limit, mark
// included, on a UTF-8 boundary, and says the defender cut it; a field
// that fits is unchanged.
func TestCutText(t *testing.T) {
	tests := []struct {
		name  string
		s     string
		limit int
		want  string
	}{
		{"fits", "abc", 3, "abc"},
		// 60 bytes less the mark with room for 3 digits: 20 kept.
		{"cut", strings.Repeat("a", 100), 60, strings.Repeat("a", 20) + "…[cut by the defender: 80 more bytes]"},
		{"on a rune boundary", strings.Repeat("é", 50), 59, strings.Repeat("é", 9) + "…[cut by the defender: 82 more bytes]"},
		{"no room for the mark", strings.Repeat("a", 100), 10, strings.Repeat("a", 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CutText(tt.s, tt.limit)
			if got != tt.want || len(got) > tt.limit {
				t.Errorf("CutText(%d bytes, %d) = %q (%d bytes), want %q", len(tt.s), tt.limit, got, len(got), tt.want)
			}
		})
	}
	long := CutText(strings.Repeat("x", 20<<10), MaxExecMessage)
	if len(long) != MaxExecMessage-1 || !strings.HasSuffix(long, CutMarker+"4138 more bytes]") {
		t.Errorf("20 KiB cut to %d: %d bytes ending %q", MaxExecMessage, len(long), long[len(long)-40:])
	}
}

func TestAggregate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := api.Audit{ID: "a", Time: t0, Kind: api.AuditDNS, Effect: policy.EffectPrevent, Message: DNSMessage("yahoo.com")}
	b := a
	b.ID, b.Time = "b", t0.Add(time.Second)
	c := api.Audit{ID: "c", Time: t0, Kind: api.AuditDNS, Effect: policy.EffectPrevent, Message: DNSMessage("bing.com")}
	d := a
	d.ID, d.Time, d.Count = "d", t0.Add(2*time.Second), 3
	got := Aggregate([]api.Audit{a, c, b, d})
	if len(got) != 2 || got[0].ID != "a" || got[0].Count != 5 || !got[0].FirstSeen.Equal(t0) ||
		!got[0].LastSeen.Equal(t0.Add(2*time.Second)) || got[1].ID != "c" || got[1].Count != 1 {
		t.Errorf("aggregate = %+v", got)
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONLines(&buf)
	if err := j.Send(context.Background(), []api.Audit{{ID: "1", Message: "m1"}, {ID: "2", Message: "m2"}}); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	for _, want := range []string{"m1", "m2"} {
		var a api.Audit
		if err := dec.Decode(&a); err != nil || a.Message != want {
			t.Fatalf("decode = %+v, %v; want message %q", a, err, want)
		}
	}
}
