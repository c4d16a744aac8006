package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRuntimeRuleChecks(t *testing.T) {
	deny := &RuntimeRule{
		Processes: ProcessPolicy{Effect: EffectPrevent, Denied: []string{"mkdir", "/usr/bin/nc*"}},
		Network: NetworkPolicy{
			Effect:               EffectAlert,
			DeniedDomains:        []string{"yahoo.com"},
			DeniedOutbound:       []Destination{{CIDR: "10.0.0.0/8"}, {CIDR: "2001:db8::/32", Ports: []PortRange{{443, 443}}}},
			DeniedListeningPorts: []PortRange{{22, 22}},
		},
	}
	allow := &RuntimeRule{
		Processes: ProcessPolicy{Effect: EffectAlert, Allowed: []string{"/bin/sh", "cat"}},
		Network: NetworkPolicy{
			Effect:                EffectPrevent,
			AllowedDomains:        []string{"*.example.org"},
			AllowedOutbound:       []Destination{{CIDR: "192.0.2.1", Ports: []PortRange{{80, 80}}}},
			AllowedListeningPorts: []PortRange{{8000, 8080}},
		},
	}
	off := &RuntimeRule{Processes: ProcessPolicy{Denied: []string{"mkdir"}}}
	ap := netip.MustParseAddrPort
	tests := []struct {
		name  string
		got   Decision
		want  Decision
		viol  bool
		block bool
	}{
		{"denied by name", deny.CheckExec("/bin/mkdir"), Decision{EffectPrevent, ReasonDenied, "mkdir"}, true, true},
		{"denied by alias", deny.CheckExec("/tmp/x", "/usr/bin/mkdir"), Decision{EffectPrevent, ReasonDenied, "mkdir"}, true, true},
		{"denied by path glob", deny.CheckExec("/usr/bin/ncat"), Decision{EffectPrevent, ReasonDenied, "/usr/bin/nc*"}, true, true},
		{"path entry ignores other dirs", deny.CheckExec("/opt/ncat"), Decision{}, false, false},
		{"not denied", deny.CheckExec("/bin/ls"), Decision{}, false, false},
		{"allowed path", allow.CheckExec("/bin/sh"), Decision{}, false, false},
		{"allowed name", allow.CheckExec("/usr/bin/cat"), Decision{}, false, false},
		{"allow-list miss", allow.CheckExec("/bin/ls"), Decision{EffectAlert, ReasonNotAllowed, ""}, true, false},
		{"no effect means disable", off.CheckExec("/bin/mkdir"), Decision{}, false, false},
		{"nil rule", (*RuntimeRule)(nil).CheckExec("/bin/mkdir"), Decision{}, false, false},
		{"domain", deny.CheckDomain("yahoo.com"), Decision{EffectAlert, ReasonDenied, "yahoo.com"}, true, false},
		{"subdomain, case, dot", deny.CheckDomain("WWW.Yahoo.COM."), Decision{EffectAlert, ReasonDenied, "yahoo.com"}, true, false},
		{"lookalike is not a subdomain", deny.CheckDomain("notyahoo.com"), Decision{}, false, false},
		{"allowed domain glob", allow.CheckDomain("a.example.org"), Decision{}, false, false},
		{"domain allow-list miss", allow.CheckDomain("google.com"), Decision{EffectPrevent, ReasonNotAllowed, ""}, true, true},
		{"connect denied v4", deny.CheckConnect(ap("10.1.2.3:80")), Decision{EffectAlert, ReasonDenied, "10.0.0.0/8"}, true, false},
		{"connect denied v4-mapped", deny.CheckConnect(ap("[::ffff:10.1.2.3]:80")), Decision{EffectAlert, ReasonDenied, "10.0.0.0/8"}, true, false},
		{"connect denied v6 port", deny.CheckConnect(ap("[2001:db8::1]:443")), Decision{EffectAlert, ReasonDenied, "2001:db8::/32 port 443"}, true, false},
		{"connect v6 other port", deny.CheckConnect(ap("[2001:db8::1]:80")), Decision{}, false, false},
		{"connect allowed", allow.CheckConnect(ap("192.0.2.1:80")), Decision{}, false, false},
		{"connect allow-list miss", allow.CheckConnect(ap("192.0.2.1:81")), Decision{EffectPrevent, ReasonNotAllowed, ""}, true, true},
		{"listen denied", deny.CheckListen(22), Decision{EffectAlert, ReasonDenied, "22"}, true, false},
		{"listen allowed", allow.CheckListen(8080), Decision{}, false, false},
		{"listen allow-list miss", allow.CheckListen(9090), Decision{EffectPrevent, ReasonNotAllowed, ""}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("decision = %+v, want %+v", tt.got, tt.want)
			}
			if tt.got.Violation() != tt.viol || tt.got.Prevent() != tt.block {
				t.Errorf("violation/prevent = %v/%v, want %v/%v", tt.got.Violation(), tt.got.Prevent(), tt.viol, tt.block)
			}
		})
	}
}

func TestDetectorEffects(t *testing.T) {
	var none *RuntimeRule
	r := &RuntimeRule{Name: "r", Detectors: map[string]Effect{"drift": EffectPrevent, "reverse-shell": EffectOff, "crypto-miner": EffectDisable}}
	tests := []struct {
		r    *RuntimeRule
		id   string
		want Effect
	}{
		{none, "drift", EffectAlert},
		{&RuntimeRule{}, "drift", EffectAlert},
		{r, "drift", EffectPrevent},
		{r, "reverse-shell", EffectDisable},
		{r, "crypto-miner", EffectDisable},
		{r, "tempdir-exec", EffectAlert},
	}
	for _, tt := range tests {
		if got := tt.r.DetectorEffect(tt.id); got != tt.want {
			t.Errorf("DetectorEffect(%s) = %q, want %q", tt.id, got, tt.want)
		}
	}
	bad := &Policy{Runtime: []RuntimeRule{{Name: "r", Detectors: map[string]Effect{"drift": "block", "nosuch": EffectAlert}}}}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "runtime[0].detectors.drift") || !strings.Contains(err.Error(), "runtime[0].detectors.nosuch") {
		t.Fatalf("Validate = %v, want errors naming detectors.drift and detectors.nosuch", err)
	}
	good := &Policy{Runtime: []RuntimeRule{{Name: "r", Detectors: map[string]Effect{"drift": EffectPrevent, "reverse-shell": EffectOff}}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}
