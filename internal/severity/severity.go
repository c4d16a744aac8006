// Package severity is the one severity scale of taskguard's findings
// (vulnerabilities, compliance checks, policy thresholds): UNKNOWN < LOW <
// MEDIUM < HIGH < CRITICAL, parsed case-insensitively and written as the
// upper-case name (JSON and text).
package severity

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity is a level of the scale; the zero value is Unknown.
type Severity int

// The levels, in order.
const (
	Unknown Severity = iota
	Low
	Medium
	High
	Critical
)

var names = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// All lists the levels from Unknown to Critical.
func All() []Severity { return []Severity{Unknown, Low, Medium, High, Critical} }

// Known lists the levels a finding can be rated with, Low to Critical.
func Known() []Severity { return []Severity{Low, Medium, High, Critical} }

// Names returns the upper-case names of levels.
func Names(levels []Severity) []string {
	out := make([]string, len(levels))
	for i, s := range levels {
		out[i] = s.String()
	}
	return out
}

// String returns the upper-case name ("HIGH"); a value off the scale is "UNKNOWN".
func (s Severity) String() string {
	if s < Unknown || s > Critical {
		return names[Unknown]
	}
	return names[s]
}

// Parse reads a level's name in any case ("high", "High", "HIGH").
func Parse(name string) (Severity, error) {
	n := strings.TrimSpace(name)
	for i, want := range names {
		if strings.EqualFold(n, want) {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("severity %q: want one of %s", name, strings.Join(names[:], ", "))
}

// Of is Parse for ranking what a DB or a report says: a name off the scale
// (or empty) is Unknown.
func Of(name string) Severity {
	s, err := Parse(name)
	if err != nil {
		return Unknown
	}
	return s
}

// Valid reports whether name is a level of the scale (any case).
func Valid(name string) bool {
	_, err := Parse(name)
	return err == nil
}

// AtLeast reports whether a (a name, any case) is at or above threshold t;
// unknown names rank lowest.
func AtLeast(a, t string) bool { return Of(a) >= Of(t) }

// Compare orders two names by level: <0, 0 or >0.
func Compare(a, b string) int { return int(Of(a)) - int(Of(b)) }

// Normalize returns name's upper-case level name, "UNKNOWN" when off the scale.
func Normalize(name string) string { return Of(name).String() }

// MarshalText writes the upper-case name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name in any case; an unknown name is an error.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalJSON writes the upper-case name as a JSON string.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a JSON string holding a name in any case.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("severity: %w", err)
	}
	return s.UnmarshalText([]byte(name))
}
