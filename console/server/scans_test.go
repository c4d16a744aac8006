package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/scanners/report"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/vuln"
)

// ciReport is a CI report as `taskguard ci` writes it.
func ciReport(t *testing.T, image string, severity string) []byte {
	t.Helper()
	rep := report.Report{
		SchemaVersion: report.SchemaVersion,
		CreatedAt:     time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC),
		Policy:        report.PolicySource{Source: "console", Rule: "default"},
		Image:         &scan.Artifact{Name: image, Kind: "registry", Digest: "sha256:abc"},
		Task:          &report.Task{Path: "task.json", Family: "web"},
		Vulnerabilities: []report.Vulnerability{{
			Finding: vuln.Finding{VulnerabilityID: "CVE-2024-0001", PkgName: "openssl", InstalledVersion: "3.0.1", FixedVersion: "3.0.2", Severity: severity},
			Verdict: report.Verdict{Action: report.ActionBlock, Reason: "at or above HIGH"},
		}},
	}
	rep.Finish()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScans(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	ci := e.apiClient(auth.RoleCI)
	first, err := ci.PublishScan(ctx, ciReport(t, "registry.example/web:1", "HIGH"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Image != "registry.example/web:1" || first.Result != report.ResultBlocked || first.Publisher != "user-ci" ||
		first.TaskFamily != "web" || first.Digest != "sha256:abc" || first.ID == "" {
		t.Fatalf("PublishScan = %+v", first)
	}
	var sum report.Summary
	if err := json.Unmarshal(first.Summary, &sum); err != nil || sum.Vulnerabilities.High != 1 || sum.Blocked != 1 {
		t.Errorf("summary = %s, %v", first.Summary, err)
	}
	second, err := ci.PublishScan(ctx, ciReport(t, "registry.example/api:2", "CRITICAL"))
	if err != nil {
		t.Fatal(err)
	}
	auditor := e.apiClient(auth.RoleAuditor)
	list, err := auditor.Scans(ctx, "", "")
	if err != nil || len(list.Scans) != 2 || list.Scans[0].ID != second.ID || list.Scans[1].ID != first.ID {
		t.Fatalf("Scans = %+v, %v", list, err)
	}
	only, err := auditor.Scans(ctx, "registry.example/web:1", "")
	if err != nil || len(only.Scans) != 1 || only.Scans[0].ID != first.ID {
		t.Fatalf("Scans(image) = %+v, %v", only, err)
	}
	detail, err := auditor.Scan(ctx, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(detail.Report, &rep); err != nil || len(rep.Vulnerabilities) != 1 || rep.Vulnerabilities[0].Severity != "CRITICAL" {
		t.Fatalf("detail report = %s, %v", detail.Report, err)
	}
	if _, err := auditor.Scan(ctx, "no-such-scan"); statusOf(err) != http.StatusNotFound {
		t.Errorf("a missing scan: %v, want 404", err)
	}
	bad := []struct{ body, want string }{
		{`{"schemaVersion":2,"result":"passed"}`, "schema version 1"},
		{`{"schemaVersion":1,"result":"maybe"}`, "result"},
		{`{"schemaVersion":"1"}`, "schemaVersion"},
		{`[1,2]`, "JSON object"},
		{`{`, "not valid JSON"},
	}
	for _, b := range bad {
		r := e.do("POST", api.PathScans, basic(auth.RoleCI), b.body)
		if r.status != 400 || !strings.Contains(errorMessage(t, r.body), b.want) {
			t.Errorf("POST %s: %d %s; want 400 naming %q", b.body, r.status, r.body, b.want)
		}
	}
	if r := e.do("POST", api.PathScans, basic(auth.RoleAuditor), string(ciReport(t, "x", "LOW"))); r.status != 403 {
		t.Errorf("auditor publishes a scan: %d, want 403", r.status)
	}
	if r := e.do("GET", api.PathScans+"?cursor=bad", basic(auth.RoleAuditor), ""); r.status != 400 {
		t.Errorf("bad cursor: %d, want 400", r.status)
	}
}

func TestMetrics(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	if _, err := e.agentClient("web").PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{
		{ID: "m1", Kind: api.AuditDNS}, {ID: "m2", Kind: api.AuditDNS}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.agentClient("web").PostAudits(ctx, api.AuditBatch{Audits: []api.Audit{{ID: "m1", Kind: api.AuditDNS}}}); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	for _, want := range []string{
		`taskguard_console_audits_ingested_total{result="stored"} 2`,
		`taskguard_console_audits_ingested_total{result="duplicate"} 1`,
		`taskguard_console_http_requests_total{code="202",method="POST",route="agent.audits"} 2`,
		`taskguard_console_defender_task_families 1`,
		`taskguard_console_defender_last_seen_timestamp_seconds{task_family="web"}`,
		`taskguard_console_http_request_duration_seconds_bucket{route="agent.audits",le="60"} 2`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if r := e.do("GET", api.PathMetrics, "", ""); r.status != 401 {
		t.Errorf("metrics without credentials: %d, want 401", r.status)
	}
}

// The upload: unknown fields holding arrays nested 9,990 deep. It is
// refused (400, naming the depth) instead of being kept; a report with
// ordinary unknown fields is kept, and read back as large as it was sent,
// never re-encoded.
func TestScanUploadDepthAndReadSize(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	deep := strings.Repeat("[", 9990) + strings.Repeat("]", 9990)
	hostile := `{"schemaVersion":1,"result":"passed","x1":` + deep + `,"x2":` + deep + `}`
	r := e.do("POST", api.PathScans, basic(auth.RoleCI), hostile)
	if r.status != 400 || !strings.Contains(errorMessage(t, r.body), "deeper than 64 levels") {
		t.Fatalf("deeply nested upload: %d %.200s; want 400 naming the depth", r.status, r.body)
	}
	// Just under the limit, in an unknown field: kept.
	ok := ciReport(t, "registry.example/web:1", "HIGH")
	ok = append(ok[:len(ok)-1], []byte(`,"futureField":`+strings.Repeat("[", 60)+`"kept"`+strings.Repeat("]", 60)+`}`)...)
	sum, err := e.apiClient(auth.RoleCI).PublishScan(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	got := e.do("GET", api.PathScans+"/"+sum.ID, basic(auth.RoleAuditor), "")
	if got.status != 200 || !strings.Contains(got.body, `"kept"`) {
		t.Fatalf("GET the scan: %d", got.status)
	}
	if len(got.body) > len(ok)+1024 {
		t.Errorf("the answer is %d bytes for a %d-byte upload: re-encoded", len(got.body), len(ok))
	}
	var detail api.ScanDetail
	if err := json.Unmarshal([]byte(got.body), &detail); err != nil || detail.ID != sum.ID || detail.Image != "registry.example/web:1" {
		t.Fatalf("the answer is not a ScanDetail: %+v, %v", detail.ScanSummary, err)
	}
}

func TestDeleteScan(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	sum, err := e.apiClient(auth.RoleCI).PublishScan(ctx, ciReport(t, "registry.example/web:1", "HIGH"))
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []auth.Role{auth.RoleCI, auth.RoleAuditor, auth.RoleDefenderManager} {
		if err := e.apiClient(role).DeleteScan(ctx, sum.ID); statusOf(err) != http.StatusForbidden {
			t.Errorf("%s deletes a scan: %v, want 403", role, err)
		}
	}
	admin := e.apiClient(auth.RoleAdmin)
	if err := admin.DeleteScan(ctx, sum.ID); err != nil {
		t.Fatalf("admin deletes the scan: %v", err)
	}
	if _, err := admin.Scan(ctx, sum.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("the deleted scan: %v, want 404", err)
	}
	if err := admin.DeleteScan(ctx, sum.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleting it again: %v, want 404", err)
	}
}

func TestJSONDepth(t *testing.T) {
	tests := []struct {
		in    string
		depth int
	}{
		{`{}`, 1},
		{`{"a":[1,{"b":[]}]}`, 4},
		{`"[[[["`, 0},
		{`{"a":"\"[[["}`, 1},
		{`{"a":"\\"}`, 1},
		{`[[[`, 3},
	}
	for _, tt := range tests {
		if d, _ := jsonDepth([]byte(tt.in), 100); d != tt.depth {
			t.Errorf("jsonDepth(%s) = %d, want %d", tt.in, d, tt.depth)
		}
	}
	if d, at := jsonDepth([]byte(`[[[[`), 2); d != 3 || at != 2 {
		t.Errorf("jsonDepth past the limit = %d at %d, want 3 at 2", d, at)
	}
}

// TestUploadBudget: when the raw bodies of other large uploads fill the
// budget, an upload is answered 503 with Retry-After at once (it neither
// waits nor is read); once there is room it is stored.
func TestUploadBudget(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	body := string(ciReport(t, "registry.example/web:1", "HIGH"))
	// Other uploads hold all but a few bytes of the budget.
	held := int64(uploadBudgetBytes - 16)
	if !uploadBudget.TryAcquire(held) {
		t.Fatal("the upload budget is not free at the start of the test")
	}
	r := e.do("POST", api.PathScans, basic(auth.RoleCI), body)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(errorMessage(t, r.body), "retry") {
		t.Errorf("upload with the budget full: %d Retry-After %q %.200s; want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	inv := `{"taskFamily":"shop-web","container":"app","image":"shop/web:1","hash":"sha256:x","packages":[]}`
	if r := e.do("POST", api.PathAgentInventory, basic(auth.RoleAdmin), inv); r.status != http.StatusServiceUnavailable {
		t.Errorf("inventory with the budget full: %d %.200s; want 503", r.status, r.body)
	}
	uploadBudget.Release(held)
	if r := e.do("POST", api.PathScans, basic(auth.RoleCI), body); r.status != http.StatusCreated {
		t.Fatalf("upload with room: %d %.200s", r.status, r.body)
	}
	// Every reservation was given back.
	if !uploadBudget.TryAcquire(uploadBudgetBytes) {
		t.Fatal("the budget is not whole after the uploads")
	}
	uploadBudget.Release(uploadBudgetBytes)
}

// TestConcurrentLargeUploads: eight 15 MiB reports at once: each is stored
// or answered 503 (never more than the budget's four bodies held), none
// hangs, and the budget is whole afterwards.
func TestConcurrentLargeUploads(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	var big bytes.Buffer
	big.WriteString(`{"schemaVersion":1,"result":"passed","future":"`)
	big.WriteString(strings.Repeat("a", 15<<20))
	big.WriteString(`"}`)
	codes := make(chan int, 8)
	for range 8 {
		go func() {
			req, _ := http.NewRequest("POST", e.url+api.PathScans, bytes.NewReader(big.Bytes()))
			req.SetBasicAuth(userOf(auth.RoleCI), passwords[auth.RoleCI])
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.client.Do(req)
			if err != nil {
				codes <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	stored := 0
	for range 8 {
		select {
		case c := <-codes:
			switch c {
			case http.StatusCreated:
				stored++
			case http.StatusServiceUnavailable:
			default:
				t.Errorf("a large upload answered %d", c)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("a large upload hangs")
		}
	}
	if stored == 0 {
		t.Error("no large upload was stored")
	}
	if !uploadBudget.TryAcquire(uploadBudgetBytes) {
		t.Fatal("the budget is not whole after the uploads")
	}
	uploadBudget.Release(uploadBudgetBytes)
}
