package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTaskFamily(t *testing.T) {
	tests := []struct {
		family string
		ok     bool
		msg    string
	}{
		{"web", true, ""},
		{"shop-web_2", true, ""},
		{strings.Repeat("a", 255), true, ""},
		{"", false, "empty"},
		{strings.Repeat("a", 256), false, "256 characters"},
		{strings.Repeat("a", 300), false, "300 characters"},
		{"../etc", false, "'.' at byte 0"},
		{"my app", false, "' ' at byte 2"},
		{"web/x", false, "'/'"},
		{"wéb", false, "'é' at byte 1"},
		{"w\xe9b", false, `'\xe9' at byte 1`},
		{"web\x00", false, "byte 3"},
		{"web:1", false, "':'"},
	}
	for _, tt := range tests {
		err := ValidateTaskFamily(tt.family)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidateTaskFamily(%.20q) = %v, want nil", tt.family, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ValidateTaskFamily(%.20q) = %v, want ErrInvalid saying %q", tt.family, err, tt.msg)
		}
	}
}

// FuzzValidateTaskFamily: an accepted family is what ECS accepts, byte for byte.
func FuzzValidateTaskFamily(f *testing.F) {
	for _, s := range []string{"web", "../etc", "a b", strings.Repeat("x", 256), "wéb", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateTaskFamily(s)
		ok := len(s) >= 1 && len(s) <= 255
		for i := 0; i < len(s) && ok; i++ {
			c := s[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		}
		if ok != (err == nil) {
			t.Fatalf("ValidateTaskFamily(%q) = %v, ECS would accept: %v", s, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("ValidateTaskFamily(%q) = %v, not ErrInvalid", s, err)
		}
	})
}
