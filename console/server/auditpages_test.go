package server

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
)

// The audits page pages through every record, newest first, with the
// filters kept: Older → until the last page, ← Newest back to the first.
func TestAuditsPagePagination(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	agent := e.agentClient("shop-web")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var batch []api.Audit
	for i := range 130 {
		batch = append(batch, api.Audit{ID: fmt.Sprintf("p%03d", i), Time: base.Add(time.Duration(i) * time.Second), Kind: api.AuditProcess,
			Effect: policy.EffectAlert, Container: "app", Message: fmt.Sprintf("record-%03d", i)})
	}
	if _, err := agent.PostAudits(context.Background(), api.AuditBatch{Audits: batch}); err != nil {
		t.Fatal(err)
	}
	tok := e.login(userOf(auth.RoleAuditor), passwords[auth.RoleAuditor]).Token
	get := func(query string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", e.url+"/audits/runtime?"+query, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: tok})
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET /audits/runtime?%s: %d", query, resp.StatusCode)
		}
		return string(b)
	}
	link := regexp.MustCompile(`id="(older|newest)" href="\?([^"]*)"`)
	record := regexp.MustCompile(`record-(\d{3})`)
	seen := map[string]bool{}
	query := "limit=50&container=app"
	var pages int
	for {
		page := get(query)
		pages++
		for _, m := range record.FindAllStringSubmatch(page, -1) {
			if seen[m[1]] {
				t.Fatalf("record %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		links := map[string]string{}
		for _, m := range link.FindAllStringSubmatch(page, -1) {
			links[m[1]] = html.UnescapeString(m[2])
		}
		if pages > 1 {
			if nw := links["newest"]; !strings.Contains(nw, "container=app") || strings.Contains(nw, "cursor") {
				t.Errorf("page %d: ← Newest links to ?%s", pages, nw)
			}
		} else if _, ok := links["newest"]; ok {
			t.Error("the first page links to itself as Newest")
		}
		older, ok := links["older"]
		if !ok {
			break
		}
		if !strings.Contains(older, "container=app") || !strings.Contains(older, "limit=50") {
			t.Errorf("Older → drops the filters: ?%s", older)
		}
		query = older
		if pages > 10 {
			t.Fatal("more than 10 pages for 130 records")
		}
	}
	if pages != 3 || len(seen) != 130 {
		t.Errorf("%d pages showed %d distinct records, want 3 pages, 130 records", pages, len(seen))
	}
}

// The runtime audits page filters by detector.
func TestAuditsPageDetectorFilter(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	batch := []api.Audit{
		{ID: "t1", Time: base, Kind: api.AuditThreat, Detector: "drift", Technique: "T1105", Effect: policy.EffectAlert, Container: "app", Message: "drift-record"},
		{ID: "t2", Time: base.Add(time.Second), Kind: api.AuditThreat, Detector: "crypto-miner", Technique: "T1496", Effect: policy.EffectAlert, Container: "app", Message: "miner-record"},
	}
	if _, err := e.agentClient("shop-web").PostAudits(context.Background(), api.AuditBatch{Audits: batch}); err != nil {
		t.Fatal(err)
	}
	tok := e.login(userOf(auth.RoleAuditor), passwords[auth.RoleAuditor]).Token
	req, _ := http.NewRequest("GET", e.url+"/audits/runtime?detector=drift", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: tok})
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if resp.StatusCode != 200 || !strings.Contains(page, "drift-record") || strings.Contains(page, "miner-record") {
		t.Fatalf("detector=drift: status %d, page shows drift %v, miner %v", resp.StatusCode, strings.Contains(page, "drift-record"), strings.Contains(page, "miner-record"))
	}
	if !strings.Contains(page, `<select name="detector">`) || !strings.Contains(page, "<option selected>drift</option>") {
		t.Error("the page lacks the detector select with drift selected")
	}
}
