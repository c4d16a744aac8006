package waf

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// floodRule limits every client to one request per hour (prevent) and turns
// the bot detector on (alert).
func floodRule() policy.WAFRule {
	r := rule(1, map[policy.Protection]policy.Effect{policy.ProtectionSQLi: policy.EffectPrevent})
	r.RateLimit = &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: 1, PeriodSeconds: 3600}
	r.Bots = policy.EffectAlert
	return r
}

// serveFrom sends one request from client through the proxy's handler and
// returns the status and the event ID the answer shows.
func serveFrom(p *Proxy, client, ua string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/api/items", nil)
	req.RemoteAddr = client + ":40000"
	req.Header.Set("User-Agent", ua)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	return w.Code, w.Header().Get(EventIDHeader)
}

// moreRe reads the count of a summary audit.
var moreRe = regexp.MustCompile(` (\d+) more requests? from `)

// counted is what a list of audits accounts for, per protection and
// source: one per audit of a single request, the count of each summary.
func counted(audits []api.Audit) map[string]int {
	out := map[string]int{}
	for _, a := range audits {
		k := a.WAF.Protections[0] + " " + a.WAF.Source
		if m := moreRe.FindStringSubmatch(a.Message); m != nil {
			n, _ := strconv.Atoi(m[1])
			out[k] += n
			continue
		}
		out[k]++
	}
	return out
}

// TestAlertAggregation: under a flood, a client's first rate-limit and bot
// findings are audited at once, the next ones once per window as a count
// (whose event ID the refused requests showed); a window without findings
// forgets the client, so its next finding is audited at once again. No
// finding is lost: the audits account for every one.
func TestAlertAggregation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &audits{}
		p, err := New(floodRule(), WithAuditSink(rec.sink), WithAlertWindow(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		p.eng.Load().upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.alerts.run(ctx); close(done) }()

		// Client A: a scanner, 50 requests; client B: a browser, 5.
		shown := map[string]int{}
		for i := range 50 {
			st, id := serveFrom(p, "192.0.2.10", "ffuf/2.1")
			if want := http.StatusTooManyRequests; i > 0 && st != want {
				t.Fatalf("A request %d: status %d, want %d", i+1, st, want)
			}
			if i > 0 {
				shown[id]++
			}
			time.Sleep(100 * time.Millisecond) // 5 s of flood in fake time
		}
		for range 5 {
			serveFrom(p, "192.0.2.20", "Mozilla/5.0")
		}
		first := rec.all()
		if got := counted(first); len(first) != 4 || got["rate-limit 192.0.2.10"] != 1 || got["bots 192.0.2.10"] != 1 ||
			got["rate-limit 192.0.2.20"] != 1 || got["bots 192.0.2.20"] != 1 {
			t.Fatalf("first audits: %d %v, want one per client and protection", len(first), got)
		}
		if len(shown) != 2 {
			t.Fatalf("the 49 refused requests of A showed %d event IDs, want 2 (the first's audit, then their summary's)", len(shown))
		}

		// The window ends: one summary per client and protection with a count.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		all := rec.all()
		summaries := all[len(first):]
		if len(summaries) != 2 {
			t.Fatalf("summaries after the window: %d %+v, want 2 (A and B rate limit)", len(summaries), summaries)
		}
		for _, a := range summaries {
			if a.WAF.Source == "192.0.2.10" && a.WAF.Protections[0] == protectionRateLimit {
				want := fmt.Sprintf("rate limit blocked 48 more requests from 192.0.2.10 in the last 10s (last GET /api/items): more than 1 requests in 3600 s (event %s)", a.ID)
				if a.Message != want || a.Effect != policy.EffectPrevent || a.Rule != "web" || shown[a.ID] != 48 {
					t.Errorf("A's summary %q (effect %s rule %s), want %q with the ID the refused requests showed", a.Message, a.Effect, a.Rule, want)
				}
			}
		}
		if got := counted(all); got["rate-limit 192.0.2.10"] != 49 || got["bots 192.0.2.10"] != 1 ||
			got["rate-limit 192.0.2.20"] != 4 || got["bots 192.0.2.20"] != 1 {
			t.Fatalf("audits account for %v, want A 49 rate-limit + 1 bot, B 4 + 1 (refused requests stop before the bot check)", got)
		}

		// A quiet window forgets every client; A's next finding is audited at once.
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if n := len(rec.all()); n != len(all) || p.alerts.tracked() != 0 {
			t.Fatalf("quiet windows: %d new audits, %d clients tracked, want none", n-len(all), p.alerts.tracked())
		}
		serveFrom(p, "192.0.2.10", "ffuf/2.1")
		if n := len(rec.all()); n != len(all)+1 {
			t.Fatalf("A after a quiet window: %d new audits, want 1 at once", n-len(all))
		}
		cancel()
		<-done
	})
}

// TestAlertAggregationBounded: with more clients than the aggregator
// tracks, memory stays bounded and the findings beyond are counted together;
// Close audits what is still counted, so every finding is accounted for.
func TestAlertAggregationBounded(t *testing.T) {
	rec := &audits{}
	p, err := New(floodRule(), WithAuditSink(rec.sink))
	if err != nil {
		t.Fatal(err)
	}
	p.alerts.max = 8
	p.eng.Load().upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	const clients, each = 40, 5
	for c := range clients {
		for range each {
			if st, _ := serveFrom(p, fmt.Sprintf("198.51.100.%d", c+1), "Mozilla/5.0 (X11) Firefox/128.0"); st != http.StatusOK && st != http.StatusTooManyRequests {
				t.Fatalf("status %d", st)
			}
		}
		if n := p.alerts.tracked(); n > p.alerts.max+2 {
			t.Fatalf("%d keys tracked, bound %d", n, p.alerts.max+2)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	others := false
	for k, n := range counted(rec.all()) {
		if strings.HasPrefix(k, "rate-limit ") {
			total += n
		}
		others = others || strings.Contains(k, "beyond the 8 tracked")
	}
	if want := clients * (each - 1); total != want || !others {
		t.Fatalf("rate-limit audits account for %d findings (beyond-the-tracked summary %v), want %d", total, others, want)
	}
	if len(rec.all()) > 2*p.alerts.max+4 {
		t.Fatalf("%d audits for %d findings, want the flood aggregated", len(rec.all()), clients*each)
	}
}

// TestAlertAggregationFlushedAtShutdown: the counts of the window in
// progress are audited when Serve ends (real listener and requests).
func TestAlertAggregationFlushedAtShutdown(t *testing.T) {
	a := newApp(t)
	r := floodRule()
	r.AppPort = a.port(t)
	rec := &audits{}
	p, err := New(r, WithAuditSink(rec.sink), WithAlertWindow(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	for range 20 {
		send(t, base, call{method: "GET", path: "/", header: map[string]string{"User-Agent": "Mozilla/5.0", "Accept": "*/*", "Accept-Language": "en", "Accept-Encoding": "gzip"}})
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d audits during the flood, want 1 (the first finding)", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 2 || !strings.Contains(got[1].Message, "rate limit blocked 18 more requests from 127.0.0.1 in the last") {
		t.Fatalf("audits after shutdown: %+v, want the first and a summary of 18", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.all()); n != 2 {
		t.Fatalf("Close after Serve added %d audits, want none (nothing left)", n-2)
	}
}
