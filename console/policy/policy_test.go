package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScopeMatches(t *testing.T) {
	id := Identity{TaskFamily: "twistlock-fargate-task", Container: "twistlock-fargate-task", Image: "matthewabq/twistlock-fargate-auto:latest"}
	tests := []struct {
		name  string
		scope Scope
		want  bool
	}{
		{"empty matches all", Scope{}, true},
		{"star", Scope{Tasks: []string{"*"}, Containers: []string{"*"}, Images: []string{"*"}}, true},
		{"exact container", Scope{Containers: []string{"twistlock-fargate-task"}}, true},
		{"other container", Scope{Containers: []string{"web"}}, false},
		{"glob family", Scope{Tasks: []string{"twistlock-*"}}, true},
		{"any of list", Scope{Tasks: []string{"shop-*", "twistlock-*"}}, true},
		{"image glob with slash", Scope{Images: []string{"matthewabq/*"}}, true},
		{"image glob mismatch", Scope{Images: []string{"nginx*"}}, false},
		{"all three must match", Scope{Tasks: []string{"twistlock-*"}, Containers: []string{"web"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.scope.Matches(id); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRuntimeForFirstMatchWins(t *testing.T) {
	p := &Policy{Runtime: []RuntimeRule{
		{Name: "web only", Scope: Scope{Containers: []string{"web"}}},
		{Name: "everything", Scope: Scope{}},
		{Name: "never reached", Scope: Scope{}},
	}}
	if r := p.RuntimeFor(Identity{Container: "web"}); r == nil || r.Name != "web only" {
		t.Errorf("web: %+v", r)
	}
	if r := p.RuntimeFor(Identity{Container: "worker"}); r == nil || r.Name != "everything" {
		t.Errorf("worker: %+v", r)
	}
	if r := (&Policy{}).RuntimeFor(Identity{}); r != nil {
		t.Errorf("empty policy: %+v, want no rule", r)
	}
	var nilPolicy *Policy
	if r := nilPolicy.RuntimeFor(Identity{}); r != nil {
		t.Errorf("nil policy: %+v", r)
	}
}

func TestWAFForOnePerPort(t *testing.T) {
	p := &Policy{WAF: []WAFRule{
		{Name: "a", ExternalPort: 8080, Scope: Scope{Tasks: []string{"shop*"}}},
		{Name: "b", ExternalPort: 8080},
		{Name: "c", ExternalPort: 8443},
	}}
	got := p.WAFFor(Identity{TaskFamily: "shop-web"})
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "c" {
		t.Errorf("shop-web: %+v", got)
	}
	got = p.WAFFor(Identity{TaskFamily: "other"})
	if len(got) != 2 || got[0].Name != "b" {
		t.Errorf("other: %+v", got)
	}
}

func TestPortRangeJSON(t *testing.T) {
	var got []PortRange
	if err := json.Unmarshal([]byte(`[80, "443", "8000-8080"]`), &got); err != nil {
		t.Fatal(err)
	}
	want := []PortRange{{80, 80}, {443, 443}, {8000, 8080}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	b, _ := json.Marshal(got)
	if string(b) != `[80,443,"8000-8080"]` {
		t.Errorf("marshal = %s", b)
	}
	for _, bad := range []string{`0`, `"70000"`, `"90-80"`, `"x"`, `"1-"`} {
		var r PortRange
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if !(PortRange{8000, 8080}).Contains(8080) || (PortRange{8000, 8080}).Contains(7999) {
		t.Error("Contains")
	}
}

func TestValidate(t *testing.T) {
	good := Policy{
		Runtime: []RuntimeRule{{
			Name:      "block mkdir",
			Scope:     Scope{Containers: []string{"twistlock-fargate-task"}},
			Processes: ProcessPolicy{Effect: EffectPrevent, Denied: []string{"mkdir"}},
			Network:   NetworkPolicy{Effect: EffectPrevent, DeniedDomains: []string{"yahoo.com"}, DeniedOutbound: []Destination{{CIDR: "10.0.0.0/8"}, {CIDR: "192.0.2.1"}}},
		}},
		WAF: []WAFRule{{Name: "web", ExternalPort: 8080, AppPort: 80, Protections: map[Protection]Effect{ProtectionSQLi: EffectPrevent}},
			{Name: "api", ExternalPort: 8443, AppPort: 81, BodyLimit: 1 << 20, OversizeEffect: EffectAlert,
				API:       &WAFAPI{Effect: EffectPrevent, Spec: "openapi: 3.0.3\ninfo: {title: shop, version: '1'}\npaths: {}\n"},
				RateLimit: &WAFRateLimit{Effect: EffectPrevent, Requests: 100, PeriodSeconds: 60},
				Sources:   &WAFSources{Effect: EffectPrevent, Allowed: []string{"10.0.0.0/8", "192.0.2.7"}, Denied: []string{"10.6.6.0/24"}},
				Bots:      EffectAlert, ClientIPHeader: "X-Forwarded-For", TrustedProxies: []string{"10.0.0.0/16"}}},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good policy: %v", err)
	}
	tests := []struct {
		name   string
		policy Policy
		fields []string
	}{
		{"unknown effect", Policy{Runtime: []RuntimeRule{{Name: "r", Processes: ProcessPolicy{Effect: "block"}}}}, []string{"runtime[0].processes.effect"}},
		{"no name", Policy{Runtime: []RuntimeRule{{}}}, []string{"runtime[0].name"}},
		{"duplicate names", Policy{Runtime: []RuntimeRule{{Name: "a"}, {Name: "a"}}}, []string{"runtime[1].name"}},
		{"bad glob", Policy{Runtime: []RuntimeRule{{Name: "a", Scope: Scope{Images: []string{"nginx["}}}}}, []string{"runtime[0].scope.images[0]"}},
		{"both lists", Policy{Runtime: []RuntimeRule{{Name: "a", Processes: ProcessPolicy{Denied: []string{"x"}, Allowed: []string{"y"}}}}}, []string{"runtime[0].processes"}},
		{"bad cidr", Policy{Runtime: []RuntimeRule{{Name: "a", Network: NetworkPolicy{DeniedOutbound: []Destination{{CIDR: "10.0.0.0/33"}}}}}}, []string{"runtime[0].network.deniedOutbound[0].cidr"}},
		{"waf ports", Policy{WAF: []WAFRule{{Name: "w"}}}, []string{"waf[0].externalPort", "waf[0].appPort"}},
		{"waf same ports", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 80, AppPort: 80}}}, []string{"waf[0].externalPort"}},
		{"waf protection", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, Protections: map[Protection]Effect{"sql": EffectAlert}}}}, []string{"waf[0].protections"}},
		{"waf detection", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, Detection: "pl2"}}}, []string{"waf[0].detection"}},
		{"waf body limit", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, BodyLimit: MaxWAFBodyLimit + 1, OversizeEffect: "drop"}}}, []string{"waf[0].bodyLimit", "waf[0].oversizeEffect"}},
		{"waf api", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, API: &WAFAPI{Effect: "block", Spec: " "}}}}, []string{"waf[0].api.effect", "waf[0].api.spec"}},
		{"waf api swagger 2", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, API: &WAFAPI{Effect: EffectAlert, Spec: `{"swagger":"2.0","info":{"title":"x","version":"1"},"paths":{}}`}}}}, []string{"waf[0].api.spec"}},
		{"waf rate limit", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, RateLimit: &WAFRateLimit{Effect: EffectPrevent}}}}, []string{"waf[0].rateLimit.requests", "waf[0].rateLimit.periodSeconds"}},
		{"waf sources", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, Sources: &WAFSources{Effect: EffectPrevent, Allowed: []string{"10.0.0.0/33"}, Denied: []string{"evil"}}}}}, []string{"waf[0].sources.allowed[0]", "waf[0].sources.denied[0]"}},
		{"waf bots prevent", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, Bots: EffectPrevent}}}, []string{"waf[0].bots"}},
		{"waf client header", Policy{WAF: []WAFRule{{Name: "w", ExternalPort: 8080, AppPort: 80, ClientIPHeader: "X Forwarded"}}}, []string{"waf[0].clientIPHeader", "waf[0].trustedProxies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
		})
	}
}

func TestWAFForTaskIgnoresContainerScope(t *testing.T) {
	p := &Policy{WAF: []WAFRule{
		{Name: "a", ExternalPort: 8080, Scope: Scope{Tasks: []string{"shop*"}, Containers: []string{"web"}}},
		{Name: "b", ExternalPort: 8080},
		{Name: "c", ExternalPort: 8443, Scope: Scope{Tasks: []string{"other"}}},
	}}
	got := p.WAFForTask("shop-web")
	if len(got) != 1 || got[0].Name != "a" {
		t.Errorf("shop-web: %+v", got)
	}
	if got := p.WAFForTask("billing"); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("billing: %+v", got)
	}
}
