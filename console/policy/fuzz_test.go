package policy

import (
	"encoding/json"
	"testing"
)

// FuzzParsePolicy: any input is refused with an error or gives a policy that
// validates and survives a JSON round trip.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("runtime:\n  - name: r\n    processes: {effect: prevent, denied: [mkdir]}\n    network: {effect: prevent, deniedDomains: [yahoo.com], allowedListeningPorts: [80, \"8000-8080\"]}\n"))
	f.Add([]byte(`{"waf":[{"name":"w","externalPort":8080,"appPort":80,"protections":{"sqli":"prevent"}}]}`))
	f.Add([]byte("ci:\n  - name: c\n    vulnerabilities: {blockThreshold: HIGH, exceptions: [{id: CVE-1, reason: r, expires: 2026-12-31}]}\n    compliance: {custom: [{id: A, title: t, severity: low, env: {name: X, match: '^a'}}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal a parsed policy: %v", err)
		}
		again, err := ParsePolicy(b)
		if err != nil {
			t.Fatalf("a parsed policy does not parse again: %v\n%s", err, b)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("round trip invalid: %v", err)
		}
	})
}

// FuzzParseIgnoreFile: no input panics; accepted files have an id and a reason per entry.
func FuzzParseIgnoreFile(f *testing.F) {
	f.Add([]byte("ignore:\n  - id: CVE-2023-44487\n    package: golang.org/x/net\n    reason: not served\n    expires: 2026-12-31\n"))
	f.Add([]byte("ignore: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ign, err := ParseIgnoreFile(data)
		if err != nil {
			return
		}
		for _, e := range ign.Ignore {
			if e.ID == "" || e.Reason == "" {
				t.Fatalf("accepted an entry without id or reason: %+v", e)
			}
		}
	})
}
