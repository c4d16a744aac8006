package waf

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/policy"
)

// wrkMix builds the requests of bench/waf/mix.lua (the wrk mode's benign
// mix): page, API read, search, static asset, form login and JSON order,
// browser headers, a random session cookie and values that change on every
// request. n picks the kind and seeds the values.
type wrkMix struct {
	rng *rand.Rand
	n   int
}

var (
	mixWords  = []string{"blue", "running", "shoes", "garden", "chair", "lampe", "été", "café", "red", "hat", "wool", "socks"}
	mixCities = []string{"Lyon", "Köln", "São Paulo", "O'Fallon", "Zürich", "Łódź"}
)

func (m *wrkMix) next() (*http.Request, []byte) {
	m.n++
	n, rng := m.n, m.rng
	w1, w2 := mixWords[rng.IntN(len(mixWords))], mixWords[rng.IntN(len(mixWords))]
	var method, target, ctype, body string
	switch n % 6 {
	case 0:
		method, target = "GET", "/"
	case 1:
		method, target = "GET", fmt.Sprintf("/api/items?page=%d&sort=name&order=asc", rng.IntN(501))
	case 2:
		method, target = "GET", "/search?q="+url.QueryEscape(fmt.Sprintf("%s %s %d", w1, w2, n))+fmt.Sprintf("&size=%d", 36+rng.IntN(11))
	case 3:
		method, target = "GET", fmt.Sprintf("/static/app.%06x.js?v=%d", rng.IntN(0x1000000), n)
	case 4:
		method, target, ctype = "POST", "/login", "application/x-www-form-urlencoded"
		body = "user=" + url.QueryEscape(fmt.Sprintf("%s%d@example.com", w1, n)) + "&password=" + url.QueryEscape(fmt.Sprintf("correct horse %s %d", w2, 1+rng.IntN(1e6))) + "&remember=on"
	default:
		method, target, ctype = "POST", "/api/orders", "application/json"
		body = fmt.Sprintf(`{"items":[{"sku":"SH-%d-BLU","qty":%d},{"sku":"HT-%d","qty":1}],"shipping":{"city":"%s","zip":"%05d"},"note":"it's for %s, leave at the door"}`,
			36+rng.IntN(11), n%9+1, 1+rng.IntN(999), mixCities[rng.IntN(len(mixCities))], 1000+rng.IntN(99000), w1)
	}
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = "shop.example.com"
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-US,en;q=0.5")
	r.Header.Set("Accept-Encoding", "gzip, deflate")
	r.Header.Set("Cookie", fmt.Sprintf("session=%08x%08x%08x; theme=dark", rng.IntN(0x7fffffff), rng.IntN(0x7fffffff), n))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Content-Length", fmt.Sprint(len(body)))
	}
	return r, []byte(body)
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mixRule is the wrk mode's rule: every protection prevent, the API
// (OpenAPI of the mix), rate limit, sources, bots alert.
func mixRule(tb testing.TB) policy.WAFRule {
	spec, err := os.ReadFile("testdata/bench-openapi.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	r := rule(8081, allProtections(policy.EffectPrevent))
	r.API = &policy.WAFAPI{Effect: policy.EffectPrevent, Spec: string(spec)}
	r.RateLimit = &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: 1_000_000, PeriodSeconds: 1}
	r.Sources = &policy.WAFSources{Effect: policy.EffectPrevent, Allowed: []string{"127.0.0.0/8"}, Denied: []string{"203.0.113.0/24"}}
	r.Bots = policy.EffectAlert
	return r
}

// BenchmarkServeMix is one request of the wrk mode's benign mix through
// the proxy's handler (checks, body, inspection, decision) with an upstream
// that answers 200 at once: what the WAF adds to forwarding, per request,
// with its allocations.
func BenchmarkServeMix(b *testing.B) {
	p, err := New(mixRule(b))
	if err != nil {
		b.Fatal(err)
	}
	p.eng.Load().upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mix := &wrkMix{rng: rand.New(rand.NewPCG(1, 2))}
	for range 3000 { // warm the memos as the wrk mode's warm-up does
		r, _ := mix.next()
		p.ServeHTTP(httptest.NewRecorder(), r)
	}
	// Requests are built in batches outside the timer: the allocations
	// reported are the handler's.
	var batch []*http.Request
	var rec []*httptest.ResponseRecorder
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		if len(batch) == 0 {
			b.StopTimer()
			built := processCPU()
			for range 1024 {
				r, _ := mix.next()
				batch = append(batch, r)
				rec = append(rec, httptest.NewRecorder())
			}
			cpu0 += processCPU() - built
			b.StartTimer()
		}
		r, w := batch[0], rec[0]
		batch, rec = batch[1:], rec[1:]
		p.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%s %s: %d %s", r.Method, r.URL, w.Code, w.Body)
		}
	}
	// The process's CPU time (every thread, GC included; batch building
	// excluded) per request is steadier than the wall clock on a shared
	// machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if s := p.Stats(); s.Alerted+s.Prevented > 0 {
		b.Fatalf("benign mix audited: %+v", s)
	}
}
