package waf

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// TestSetupArgument checks the tgsetup action's argument: the values it
// carries are the ones set, in order, and an argument that is not a
// base64url list of constant TX values is refused with an error naming it.
func TestSetupArgument(t *testing.T) {
	setvars := []string{"tx.crs_setup_version=4250", "tx.allowed_methods=GET HEAD POST OPTIONS", "tx.restricted_extensions=.asa/ .asax/ .backup/"}
	arg, err := setupArgument(setvars)
	if err != nil {
		t.Fatal(err)
	}
	var a setupAction
	if err := a.Init(nil, arg); err != nil {
		t.Fatalf("Init(setupArgument(...)): %v", err)
	}
	var got []string
	for _, v := range a.vars {
		got = append(got, "tx."+v.name+"="+strings.Join(v.values, ""))
	}
	if !slices.Equal(got, setvars) {
		t.Errorf("round trip:\n got %q\nwant %q", got, setvars)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ name, arg, want string }{
		{"empty", "", "not a base64url setup"},
		{"not base64", "05adf7a8!", "not a base64url setup"},
		{"padded base64", base64.URLEncoding.EncodeToString([]byte("tx.a=1")) + "=", "not a base64url setup"},
		{"not TX", enc("ip.a=1"), `"ip.a=1" is not a constant TX value`},
		{"no value", enc("tx.a="), `"tx.a=" is not a constant TX value`},
		{"increment", enc("tx.a=+1"), `"tx.a=+1" is not a constant TX value`},
		{"macro", enc("tx.a=%{tx.b}"), `"tx.a=%{tx.b}" is not a constant TX value`},
		{"carriage return", enc("tx.a=1\r"), `is not a constant TX value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a setupAction
			err := a.Init(nil, tc.arg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Init(%q) = %v, want an error with %q", tc.arg, err, tc.want)
			}
		})
	}
	if _, err := setupArgument([]string{"tx.a=1\nSecRule"}); err == nil {
		t.Error("setupArgument took a value with a newline")
	}
}
