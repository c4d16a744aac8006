package server

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/scanners/report"
)

// FuzzParseAuditBatch: a defender's body never panics the parser; a batch
// it accepts holds 1 to 1000 records, each either kept (unique non-empty ID,
// known kind, text safe for every engine and within the limit plus the
// marker) or named as rejected, and the kept records survive a round trip.
func FuzzParseAuditBatch(f *testing.F) {
	for _, seed := range []string{
		`{"audits":[{"id":"a","kind":"dns","effect":"prevent","message":"DNS resolution of suspicious name yahoo.com"}]}`,
		`{"audits":[{"id":"a","kind":"waf","waf":{"eventId":"e","method":"GET","path":"/","source":"1.2.3.4","ruleIds":[942100]}}]}`,
		`{"audits":[{"id":"a","kind":"process","count":3,"firstSeen":"2026-01-01T00:00:00Z","process":{"path":"/bin/mkdir","argv":["mkdir"]}}]}`,
		`{"audits":[]}`, `{"audits":[{"id":"","kind":"dns"}]}`, `{"audits":[{"id":"a","kind":"x"}]}`,
		`{"audits":[{"id":"a","kind":"dns"},{"id":"a","kind":"dns"}]}`, `{"audits":null}`, `[]`, `{`, ``,
		`{"audits":[{"id":"a","kind":"dns","time":"yesterday"}]}`,
		`{"audits":[{"id":"a\u0000","kind":"waf","message":"\u0000\ud800","waf":{"path":"/\u0000"}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseAuditBatch(bytes.NewReader(body))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if b.received == 0 || b.received > maxAuditBatch || len(b.audits)+len(b.rejected) != b.received {
			t.Fatalf("accepted a batch of %d: %d kept, %d rejected", b.received, len(b.audits), len(b.rejected))
		}
		for _, r := range b.rejected {
			if r.Reason == "" || r.Index < 0 || r.Index >= b.received || len(r.ID) > maxAuditID || !utf8.ValidString(r.ID) {
				t.Fatalf("rejection %+v", r)
			}
		}
		seen := map[string]bool{}
		for _, a := range b.audits {
			if strings.TrimSpace(a.ID) == "" || seen[a.ID] || !validKind(a.Kind) {
				t.Fatalf("accepted record %+v", a)
			}
			seen[a.ID] = true
			for _, s := range []string{a.ID, a.Message, a.TaskID, a.Container, a.Rule} {
				if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || len(s) > maxAuditString+len(api.TruncatedMarker)+32 {
					t.Fatalf("kept text %q", s)
				}
			}
		}
		again, err := json.Marshal(api.AuditBatch{Audits: b.audits})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.audits) == 0 {
			return
		}
		b2, err := parseAuditBatch(bytes.NewReader(again))
		if err != nil || len(b2.rejected) != 0 || len(b2.audits) != len(b.audits) {
			t.Fatalf("round trip of %s: %+v, %v", again, b2.rejected, err)
		}
	})
}

// FuzzParseReport: a CI report body never panics the parser, and what it
// accepts has schema version 1 and a known result.
func FuzzParseReport(f *testing.F) {
	for _, seed := range []string{
		`{"schemaVersion":1,"result":"passed","summary":{"blocked":0}}`,
		`{"schemaVersion":1,"result":"blocked","image":{"name":"nginx:1","kind":"registry"},"vulnerabilities":[{"vulnerabilityID":"CVE-1","severity":"HIGH","verdict":{"action":"block"}}]}`,
		`{"schemaVersion":2,"result":"passed"}`, `{"schemaVersion":"1"}`, `{"result":"maybe"}`, `[]`, `null`, `{`, ``,
		`{"schemaVersion":1,"result":"passed","createdAt":"never"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, err := parseReport(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "request body") {
				t.Fatalf("error %q does not say it is about the request body", err)
			}
			return
		}
		if rep.SchemaVersion != report.SchemaVersion || (rep.Result != report.ResultPassed && rep.Result != report.ResultBlocked) {
			t.Fatalf("accepted %+v", rep)
		}
	})
}

// FuzzParseAuditQuery: query strings of the audit lists never panic the
// parser, and an accepted query stays inside its list's kinds and limits.
func FuzzParseAuditQuery(f *testing.F) {
	for _, seed := range []string{
		"from=24h&to=2026-01-02T00:00:00Z&task=web&kind=dns&effect=alert&q=yahoo&limit=50",
		"kind=waf", "limit=0", "limit=99999", "effect=block", "from=yesterday", "format=csv", "format=xml",
		"colour=red", "cursor=1.2", "%zz", "q=%00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, format, err := parseAuditQuery(v, runtimeKinds)
		if err != nil {
			return
		}
		if q.Kind != "" && q.Kind != api.AuditProcess && q.Kind != api.AuditNetwork && q.Kind != api.AuditDNS && q.Kind != api.AuditDefender {
			t.Fatalf("accepted kind %q for the runtime list", q.Kind)
		}
		if q.Limit < 0 || q.Limit > 5000 || (format != "" && format != "json" && format != "csv") {
			t.Fatalf("accepted %+v, format %q", q, format)
		}
		if q.Effect != "" && !q.Effect.Valid() {
			t.Fatalf("accepted effect %q", q.Effect)
		}
	})
}
