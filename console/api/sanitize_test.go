package api

import (
	"slices"
	"strings"
	"testing"
)

// TestSanitizedMarks: the console's cut keeps its wording; a cut given to
// SanitizedWith (the defender's) is used instead, on the same fields.
func TestSanitizedMarks(t *testing.T) {
	long := strings.Repeat("a", 100)
	a := Audit{ID: "x", Message: long, WAF: &WAFDetail{Path: long, Method: "GET"}}
	const mine = "…[cut by the defender: "
	tests := []struct {
		name string
		cut  func() (Audit, []string)
		mark string
		max  int
	}{
		{"console", func() (Audit, []string) { return a.Sanitized(40) }, TruncatedMarker, 40 + len(TruncatedMarker) + len("60 more bytes]")},
		{"defender", func() (Audit, []string) {
			return a.SanitizedWith(40, func(s string, n int) string { return TruncateWithin(s, n, mine) })
		}, mine, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cut := tt.cut()
			if !slices.Equal(cut, []string{"message", "waf.path"}) {
				t.Errorf("cut fields %q, want message and waf.path", cut)
			}
			for _, s := range []string{got.Message, got.WAF.Path} {
				if !strings.Contains(s, tt.mark) || len(s) > tt.max || strings.Contains(s, TruncatedMarker) != (tt.mark == TruncatedMarker) {
					t.Errorf("cut field %q (%d bytes), want the mark %q within %d bytes", s, len(s), tt.mark, tt.max)
				}
			}
			if got.WAF.Method != "GET" || a.WAF.Path != long {
				t.Errorf("a short field changed or the original was cut: %+v", got.WAF)
			}
		})
	}
}
