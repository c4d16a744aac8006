package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
)

// The case: one 20 KB message and one ordinary audit, posted with an
// agent token: both are stored, the long one cut with the marker.
func TestAuditIngestTruncatesLongText(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	long := auditFor("long", api.AuditWAF, policy.EffectPrevent, "SQL injection in GET /"+strings.Repeat("a", 20<<10)+"?id=1' OR '1'='1")
	long.WAF = &api.WAFDetail{EventID: "e1", Method: "GET", Path: "/" + strings.Repeat("a", 20<<10), Source: "10.0.0.9", Protections: []string{"sqli"}}
	ordinary := auditFor("ordinary", api.AuditDNS, policy.EffectAlert, "DNS resolution of suspicious name yahoo.com")
	ordinary.Time = ordinary.Time.Add(time.Second)
	res, err := e.agentClient("web").PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{long, ordinary}})
	if err != nil {
		t.Fatalf("PostAudits: %v", err)
	}
	if res.Received != 2 || res.Stored != 2 || res.Truncated != 1 || len(res.Rejected) != 0 {
		t.Fatalf("answer = %+v; want 2 received, 2 stored, 1 truncated, none rejected", res)
	}
	auditor := e.apiClient(auth.RoleAuditor)
	fw, err := auditor.FirewallAudits(ctx, api.AuditQuery{})
	if err != nil || len(fw.Audits) != 1 {
		t.Fatalf("firewall audits = %+v, %v", fw, err)
	}
	got := fw.Audits[0]
	for name, v := range map[string]string{"message": got.Message, "waf.path": got.WAF.Path} {
		if !strings.Contains(v, api.TruncatedMarker) || len(v) > maxAuditString+64 || len(v) < maxAuditString {
			t.Errorf("stored %s is %d bytes ending %q; want it cut to %d bytes with the marker", name, len(v), v[max(0, len(v)-60):], maxAuditString)
		}
	}
	if !strings.HasPrefix(got.Message, "SQL injection in GET /aaaa") {
		t.Errorf("the cut message lost its start: %q", got.Message[:40])
	}
	rt, err := auditor.RuntimeAudits(ctx, api.AuditQuery{})
	if err != nil || ids(rt) != "ordinary" || rt.Audits[0].Message != ordinary.Message {
		t.Fatalf("runtime audits = %+v, %v", rt, err)
	}
}

// Records that cannot be stored are named; the others of the batch are
// stored. NUL and invalid UTF-8 are stored replaced, not refused.
func TestAuditIngestRecordByRecord(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	tok := "bearer " + agentToken(t, e, "web")
	body := `{"audits":[
		{"id":"ok-1","kind":"dns","effect":"alert","message":"first"},
		{"kind":"process","message":"no id"},
		{"id":"bad-kind","kind":"mystery"},
		{"id":"bad-effect","kind":"dns","effect":"block"},
		{"id":"ok-1","kind":"dns","message":"repeated id"},
		{"id":"bad-time","kind":"dns","time":"yesterday"},
		{"id":"image-x","kind":"dns"},
		{"id":"nul","kind":"waf","message":"GET /a\u0000b \ud800 x","waf":{"path":"/a\u0000b"},"futureField":{"x":1}},
		{"id":"ok-2","kind":"network","effect":"prevent","message":"last"}
	]}`
	r := e.do("POST", api.PathAgentAudits, tok, body)
	if r.status != 202 {
		t.Fatalf("POST: %d %s; want 202", r.status, r.body)
	}
	var res api.AuditIngestResponse
	if err := json.Unmarshal([]byte(r.body), &res); err != nil {
		t.Fatal(err)
	}
	if res.Received != 9 || res.Stored != 3 || res.Duplicates != 0 {
		t.Errorf("answer = %+v; want 9 received, 3 stored", res)
	}
	wantRejected := map[int]string{1: "audits[1].id is required", 2: "audits[2].kind", 3: "audits[3].effect", 4: "appears twice",
		5: "audits[5]: a time \"yesterday\" is not RFC 3339", 6: "the prefix"}
	if len(res.Rejected) != len(wantRejected) {
		t.Errorf("rejected = %+v; want records %v", res.Rejected, wantRejected)
	}
	for _, rej := range res.Rejected {
		if want, ok := wantRejected[rej.Index]; !ok || !strings.Contains(rej.Reason, want) {
			t.Errorf("rejection %+v; want index in %v naming %q", rej, wantRejected, want)
		}
	}
	ctx := context.Background()
	auditor := e.apiClient(auth.RoleAuditor)
	rt, err := auditor.RuntimeAudits(ctx, api.AuditQuery{})
	if err != nil || ids(rt) != "ok-1 ok-2" && ids(rt) != "ok-2 ok-1" {
		t.Fatalf("runtime audits = %q, %v", ids(rt), err)
	}
	fw, err := auditor.FirewallAudits(ctx, api.AuditQuery{})
	if err != nil || len(fw.Audits) != 1 {
		t.Fatalf("firewall audits = %+v, %v", fw, err)
	}
	if m := fw.Audits[0].Message; m != "GET /a\u2400b \uFFFD x" || fw.Audits[0].WAF.Path != "/a\u2400b" {
		t.Errorf("the NUL record was stored as %q / %q", m, fw.Audits[0].WAF.Path)
	}
}

// When the database refuses one record of a batch (here a trigger in the
// real SQLite file refuses it), the other records are still stored and only
// that one is named; the defender is not asked to send the batch again.
func TestAuditIngestStoreRefusesOneRecord(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER poison BEFORE INSERT ON audits WHEN NEW.message LIKE '%poison%'
		BEGIN SELECT RAISE(ABORT, 'this record is poison'); END`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	batch := api.AuditBatch{Audits: []api.Audit{
		auditFor("before", api.AuditDNS, policy.EffectAlert, "fine"),
		auditFor("bad", api.AuditDNS, policy.EffectAlert, "a poison record"),
		auditFor("after", api.AuditDNS, policy.EffectAlert, "fine too"),
	}}
	res, err := e.agentClient("web").PostAudits(ctx, batch)
	if err != nil {
		t.Fatalf("PostAudits: %v", err)
	}
	if res.Stored != 2 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || res.Rejected[0].ID != "bad" {
		t.Fatalf("answer = %+v; want 2 stored and record 1 (bad) named", res)
	}
	if !strings.Contains(e.logs.String(), "this record is poison") {
		t.Errorf("the log does not say why the record was refused:\n%s", e.logs.String())
	}
	page, err := e.apiClient(auth.RoleAuditor).RuntimeAudits(ctx, api.AuditQuery{})
	if err != nil || len(page.Audits) != 2 {
		t.Fatalf("stored = %q, %v; want before and after", ids(page), err)
	}
	// A database that refuses everything is the console's failure, not the
	// records': 500, and the defender keeps the batch.
	if _, err := db.Exec(`DROP TRIGGER poison; CREATE TRIGGER refuse_all BEFORE INSERT ON audits BEGIN SELECT RAISE(ABORT, 'down'); END`); err != nil {
		t.Fatal(err)
	}
	_, err = e.agentClient("web").PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{auditFor("x", api.AuditDNS, "", "m")}})
	if !api.IsStatus(err, 500) {
		t.Fatalf("PostAudits to a database that refuses every record: %v, want 500", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audits`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("audits rows = %d, %v", n, err)
	}
}

// A threat audit keeps its detector, technique, hash and process tree, and
// the runtime list filters by detector.
func TestAuditFilterByDetector(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	drift := auditFor("drift", api.AuditThreat, policy.EffectPrevent, "Drift: /app/x was written or changed after the container started; blocked by detector drift")
	drift.Detector, drift.Technique = "drift", "T1105"
	drift.Process = &api.ProcessDetail{Path: "/app/x", PID: 9, SHA256: strings.Repeat("ab", 32),
		Tree: []api.ProcessAncestor{{PID: 9, Path: "/usr/bin/dash", Argv: []string{"sh", "-c", "/app/x"}}}}
	shell := auditFor("shell", api.AuditThreat, policy.EffectAlert, "Reverse shell: sh started with its stdin on network socket (alert only)")
	shell.Detector, shell.Technique = "reverse-shell", "T1059.004"
	shell.Time = shell.Time.Add(time.Second)
	plain := auditFor("plain", api.AuditDNS, policy.EffectAlert, "DNS resolution of suspicious name yahoo.com")
	res, err := e.agentClient("web").PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{drift, shell, plain}})
	if err != nil || res.Stored != 3 {
		t.Fatalf("PostAudits = %+v, %v", res, err)
	}
	auditor := e.apiClient(auth.RoleAuditor)
	got, err := auditor.RuntimeAudits(ctx, api.AuditQuery{Detector: "drift"})
	if err != nil || ids(got) != "drift" {
		t.Fatalf("detector=drift: %+v, %v", got, err)
	}
	a := got.Audits[0]
	if a.Technique != "T1105" || a.Process == nil || a.Process.SHA256 != drift.Process.SHA256 || len(a.Process.Tree) != 1 || a.Process.Tree[0].Argv[2] != "/app/x" {
		t.Errorf("stored threat audit %+v lost its fields", a)
	}
	if got, err := auditor.RuntimeAudits(ctx, api.AuditQuery{Detector: "reverse-shell"}); err != nil || ids(got) != "shell" {
		t.Errorf("detector=reverse-shell: %+v, %v", got, err)
	}
	if _, err := auditor.RuntimeAudits(ctx, api.AuditQuery{Detector: "nosuch"}); err == nil || !strings.Contains(err.Error(), "detector") {
		t.Errorf("detector=nosuch: %v, want an error naming the detector", err)
	}
}
