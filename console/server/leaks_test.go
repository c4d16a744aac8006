package server

import (
	"fmt"
	"strings"
	"testing"

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
