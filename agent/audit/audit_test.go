package audit

import (
	"bytes"
	"context"
	"encoding/json"
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
