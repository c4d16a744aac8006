package analyzer

import (
	"context"
	"testing"
)

func TestUbuntuESMStatus(t *testing.T) {
	if !(ubuntuESM{}).Required(pathUbuntuAdvantage, nil) || (ubuntuESM{}).Required("etc/ubuntu-advantage/uaclient.conf", nil) {
		t.Fatal("Required does not want exactly the status file")
	}
	for _, tc := range []struct {
		name, in string
		want     bool
		wantErr  string
	}{
		{name: "infra enabled", in: `{"services":[{"name":"esm-apps","status":"disabled"},{"name":"esm-infra","status":"enabled","entitled":"yes"}]}`, want: true},
		{name: "infra disabled", in: `{"services":[{"name":"esm-infra","status":"disabled"}]}`},
		{name: "apps only", in: `{"services":[{"name":"esm-apps","status":"enabled"}]}`},
		{name: "not attached", in: `{"attached":false,"services":[]}`},
		{name: "malformed", in: `{"services":[`, wantErr: pathUbuntuAdvantage + ": unexpected EOF"},
		{name: "wrong type", in: `{"services":{"name":"esm-infra"}}`, wantErr: pathUbuntuAdvantage + ": json: cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ubuntuESM{}.Analyze(context.Background(), Input{Path: pathUbuntuAdvantage, Content: []byte(tc.in)})
			if !wantError(t, err, tc.wantErr) {
				return
			}
			if got := res != nil && res.UbuntuESM; got != tc.want {
				t.Errorf("ESM = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzUbuntuESMStatus(f *testing.F) {
	f.Add([]byte(`{"services":[{"name":"esm-infra","status":"enabled"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ubuntuESM{}.Analyze(context.Background(), Input{Path: pathUbuntuAdvantage, Content: b})
		if err == nil && res != nil && !res.UbuntuESM {
			t.Fatalf("a result without ESM: %+v", res)
		}
	})
}
