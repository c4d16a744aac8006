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
		{"wéb", false, "byte 1"},
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
