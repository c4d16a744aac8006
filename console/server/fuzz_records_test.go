package server

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/scanners/report"
)

// FuzzParseAuditBatch: a defender's body never panics the parser; what it
// accepts holds 1 to 1000 records with unique non-empty IDs and known kinds,
// and survives a round trip.
func FuzzParseAuditBatch(f *testing.F) {
	for _, seed := range []string{
		`{"audits":[{"id":"a","kind":"dns","effect":"prevent","message":"DNS resolution of suspicious name yahoo.com"}]}`,
		`{"audits":[{"id":"a","kind":"waf","waf":{"eventId":"e","method":"GET","path":"/","source":"1.2.3.4","ruleIds":[942100]}}]}`,
		`{"audits":[{"id":"a","kind":"process","count":3,"firstSeen":"2026-01-01T00:00:00Z","process":{"path":"/bin/mkdir","argv":["mkdir"]}}]}`,
		`{"audits":[]}`, `{"audits":[{"id":"","kind":"dns"}]}`, `{"audits":[{"id":"a","kind":"x"}]}`,
		`{"audits":[{"id":"a","kind":"dns"},{"id":"a","kind":"dns"}]}`, `{"audits":null}`, `[]`, `{`, ``,
		`{"audits":[{"id":"a","kind":"dns","time":"yesterday"}]}`,
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
		if len(b.Audits) == 0 || len(b.Audits) > maxAuditBatch {
			t.Fatalf("accepted a batch of %d", len(b.Audits))
		}
		seen := map[string]bool{}
		for _, a := range b.Audits {
			if strings.TrimSpace(a.ID) == "" || seen[a.ID] || !validKind(a.Kind) {
				t.Fatalf("accepted record %+v", a)
			}
			seen[a.ID] = true
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseAuditBatch(bytes.NewReader(again)); err != nil {
			t.Fatalf("round trip of %s: %v", again, err)
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
