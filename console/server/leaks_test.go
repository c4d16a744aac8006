package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
)

// metricSeries counts the series of a metric family in a /metrics body.
func metricSeries(body, name string) int {
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") {
			n++
		}
	}
	return n
}

// The method of a request is the client's: any token, before
// authentication. 5,000 requests with distinct made-up methods (each of
// them 1 KiB, under the header limit) must not leave 5,000 series of
// taskguard_console_http_requests_total in the process: they are counted
// under method="other". Without the fix the request counter grew by a series
// (and its 1 KiB label) per method, for the life of the process.
func TestMetricsMethodsBounded(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	const requests = 5000
	pad := strings.Repeat("X", 1024)
	for i := range requests {
		method := fmt.Sprintf("M%05d%s", i, pad)
		if r := e.do(method, api.PathMetrics, "", ""); r.status != 405 {
			t.Fatalf("request %d with method %.16s…: %d, want 405", i, method, r.status)
		}
	}
	r := e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	// The metrics request itself and the made-up methods: a handful of series.
	if n := metricSeries(r.body, "taskguard_console_http_requests_total"); n > 10 {
		t.Errorf("%d series of taskguard_console_http_requests_total after %d requests with distinct methods, want at most 10", n, requests)
	}
	if want := fmt.Sprintf(`taskguard_console_http_requests_total{code="405",method="other",route="not-found"} %d`, requests); !strings.Contains(r.body, want) {
		t.Errorf("metrics lack %s", want)
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if got := methodLabel(m); got != m {
			t.Errorf("methodLabel(%q) = %q, want it kept", m, got)
		}
	}
}

// Every task family a defender fetches policy for was remembered for the
// life of the process: an entry in the families seen and a
// taskguard_console_defender_last_seen_timestamp_seconds series each, and
// protect mints a credential for whatever family a task definition names.
// With the bound lowered to 100, 1,000 families (each with its own agent
// credential, over HTTPS) leave at most 100 remembered, and a family whose
// defender keeps fetching stays among them.
func TestFamiliesSeenBounded(t *testing.T) {
	defer func(n int) { maxFamiliesSeen = n }(maxFamiliesSeen)
	maxFamiliesSeen = 100
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	steady := e.agentClient("steady")
	const families = 1000
	for i := range families {
		if _, _, _, err := e.agentClient(fmt.Sprintf("fam-%04d", i)).AgentPolicy(ctx, "", 0); err != nil {
			t.Fatalf("family %d: %v", i, err)
		}
		if _, _, _, err := steady.AgentPolicy(ctx, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	r := e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	series := metricSeries(r.body, "taskguard_console_defender_last_seen_timestamp_seconds")
	if series > 100 {
		t.Errorf("%d series of taskguard_console_defender_last_seen_timestamp_seconds after %d families, want at most 100", series, families)
	}
	var gauge int
	for _, line := range strings.Split(r.body, "\n") {
		if v, ok := strings.CutPrefix(line, "taskguard_console_defender_task_families "); ok {
			gauge, _ = strconv.Atoi(v)
		}
	}
	if gauge != series {
		t.Errorf("taskguard_console_defender_task_families %d, want the %d series", gauge, series)
	}
	for _, f := range []string{"steady", fmt.Sprintf("fam-%04d", families-1)} {
		if want := `taskguard_console_defender_last_seen_timestamp_seconds{task_family="` + f + `"}`; !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s (seen last)", want)
		}
	}
	if strings.Contains(r.body, `task_family="fam-0000"`) {
		t.Error(`the first family, seen once 999 families ago, is still in the metrics`)
	}
	// The overview lists the families remembered (no audits were posted).
	page := e.do("GET", "/", basic(auth.RoleAuditor), "")
	if page.status != 200 {
		t.Fatalf("overview: %d", page.status)
	}
	if n := strings.Count(page.body, "<li>fam-"); n == 0 || n > 100 {
		t.Errorf("the overview lists %d families fam-… after %d, want 1 to 100", n, families)
	}
	if !strings.Contains(page.body, "<li>steady</li>") {
		t.Error("the overview does not list the family seen last")
	}
}

// A defender whose policy has not changed only ever gets 304 from its
// long-poll. It is seen all the same: with the bound lowered to 100 and
// 1,000 other families fetching policy, a family whose defender only
// long-polls (If-None-Match with the current ETag, held until its wait
// ends, 304) stays in the families seen. Before, a 304 did not count as a
// sighting, so such a family was never listed at all.
func TestLongPollingFamilySeen(t *testing.T) {
	defer func(n int) { maxFamiliesSeen = n }(maxFamiliesSeen)
	maxFamiliesSeen = 100
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	// The ETag a defender kept from before (an admin's fetch is no defender's).
	r := e.do("GET", api.PathAgentPolicy, basic(auth.RoleAdmin), "")
	etag := r.header.Get("ETag")
	if r.status != 200 || etag == "" {
		t.Fatalf("admin policy fetch: %d ETag %q", r.status, etag)
	}
	quiet := e.agentClient("quiet")
	const families = 1000
	for i := range families {
		if _, _, _, err := e.agentClient(fmt.Sprintf("fam-%04d", i)).AgentPolicy(ctx, "", 0); err != nil {
			t.Fatalf("family %d: %v", i, err)
		}
		if i%10 != 0 {
			continue
		}
		// Held until its wait ends, then 304.
		_, _, modified, err := quiet.AgentPolicy(ctx, etag, time.Millisecond)
		if err != nil || modified {
			t.Fatalf("long-poll %d: modified %v, %v; want 304", i, modified, err)
		}
	}
	r = e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	if want := `taskguard_console_defender_last_seen_timestamp_seconds{task_family="quiet"}`; !strings.Contains(r.body, want) {
		t.Errorf("metrics lack %s: a defender answered only 304 is not seen", want)
	}
	page := e.do("GET", "/", basic(auth.RoleAuditor), "")
	if page.status != 200 {
		t.Fatalf("overview: %d", page.status)
	}
	if !strings.Contains(page.body, "<li>quiet</li>") {
		t.Error("the overview does not list the family whose defender only long-polls")
	}
	// A 304 without a wait counts too.
	if _, _, modified, err := e.agentClient("quieter").AgentPolicy(ctx, etag, 0); err != nil || modified {
		t.Fatalf("conditional fetch: modified %v, %v; want 304", modified, err)
	}
	r = e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if !strings.Contains(r.body, `task_family="quieter"`) {
		t.Error("a defender answered 304 at once is not seen")
	}
}

// logLine returns the request log line of the request with id.
func (e *testEnv) logLine(id string) string {
	e.t.Helper()
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"id":"`+id+`"`) {
			return line
		}
	}
	e.t.Fatalf("no request log line with id %s", id)
	return ""
}

// The method and path of a request are the client's, up to the 64 KiB
// header limit, before authentication, and the request log line kept them
// whole: a 60 KiB made-up method made a 60 KiB line. Now a method HTTP does
// not define is logged by its first 16 bytes and its length, a path past
// 512 bytes by those and its length.
func TestRequestLogBounded(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	long := strings.Repeat("M", 60<<10)
	tests := []struct {
		name, method, path string
		status             int
		want               string // in the line
	}{
		{"60 KiB method", "X" + long, api.PathPing, 405, `"method":"XMMMMMMMMMMMMMMM…(61441 bytes)"`},
		{"60 KiB path", "GET", "/" + strings.Repeat("p", 60<<10), 404, `…(61441 bytes)"`},
		{"known method, short path", "GET", api.PathPing, 200, `"method":"GET","path":"` + api.PathPing + `"`},
		{"short made-up method", "BREW", api.PathPing, 405, `"method":"BREW"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, "", "")
			if r.status != tt.status {
				t.Fatalf("%d, want %d", r.status, tt.status)
			}
			line := e.logLine(r.header.Get("X-Request-ID"))
			if len(line) > 1024 {
				t.Errorf("log line of %d bytes, want at most 1 KiB: %.200s…", len(line), line)
			}
			if !strings.Contains(line, tt.want) {
				t.Errorf("log line %.300s lacks %s", line, tt.want)
			}
		})
	}
}
