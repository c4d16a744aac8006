// Command waf-bench measures benign-request throughput and added latency of
// the taskguard WAF proxy against a bare net/http/httputil.ReverseProxy and
// against plain Coraza+CRS (every CRS rule file, PL1, Coraza's own net/http
// middleware around the same bare proxy), in one run, on loopback only.
//
// Every target is driven by the same closed-loop Go load generator for the
// same bounded time (and at most -max requests); targets are interleaved over
// several rounds so that load from other processes hits all of them alike.
// It prints req/s, p50/p99 latency, latency added over calling the app
// directly, and the ratios.
//
//	go run ./bench/waf -duration 3s -rounds 3 -concurrency 8
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"

	"github.com/taskguard/taskguard/agent/waf"
	"github.com/taskguard/taskguard/console/policy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	run := run
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "wrk": // the real sidecar process under wrk (wrk.go)
			run, args = runWrk, args[1:]
		case "serve": // one target in its own process, for the wrk mode
			run, args = runServe, args[1:]
		}
	}
	if err := run(ctx, os.Stdout, args); err != nil {
		fmt.Fprintln(os.Stderr, "waf-bench:", err)
		os.Exit(2)
	}
}

type config struct {
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	concurrency int
	max         int
	protections string
	cpuprofile  string
}

func run(ctx context.Context, out io.Writer, args []string) error {
	var c config
	fs := flag.NewFlagSet("waf-bench", flag.ContinueOnError)
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "load time per target per round")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds over all targets")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load per target before the rounds (caches, regular-expression automata, connection pools)")
	fs.IntVar(&c.concurrency, "concurrency", 8, "concurrent keep-alive connections")
	fs.IntVar(&c.max, "max", 200000, "at most this many requests per target per round")
	fs.StringVar(&c.protections, "protections", "all", "comma-separated protections the taskguard proxy enables, or all")
	fs.StringVar(&benchHost, "host", benchHost, "Host header of the requests (empty: the listener's address)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the process while the taskguard proxy is under load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.duration <= 0 || c.rounds <= 0 || c.warmup < 0 || c.concurrency <= 0 || c.max <= 0 {
		return errors.New("duration, rounds, concurrency and max must be positive")
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))

	appURL, err := serve(ctx, http.HandlerFunc(appHandler))
	if err != nil {
		return err
	}
	bare := newBareProxy(appURL)
	bareURL, err := serve(ctx, bare)
	if err != nil {
		return err
	}
	plainWAF, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(`
Include @coraza.conf-recommended
Include @crs-setup.conf.example
Include @owasp_crs/*.conf
SecRuleEngine On
SecAuditEngine Off
`))
	if err != nil {
		return fmt.Errorf("plain coraza: %w", err)
	}
	plainURL, err := serve(ctx, txhttp.WrapHandler(plainWAF, newBareProxy(appURL)))
	if err != nil {
		return err
	}
	prot, err := protections(c.protections)
	if err != nil {
		return err
	}
	appPort := appURL.Port()
	var port uint16
	if _, err := fmt.Sscan(appPort, &port); err != nil {
		return fmt.Errorf("app port %q: %w", appPort, err)
	}
	proxy, err := waf.New(policy.WAFRule{Name: "bench", ExternalPort: 8080, AppPort: port, Protections: prot})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = proxy.Serve(ctx, ln) }()
	tgURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}

	targets := []target{
		{name: "app direct", url: appURL},
		{name: "bare ReverseProxy", url: bareURL},
		{name: "plain Coraza+CRS", url: plainURL},
		{name: "taskguard WAF", url: tgURL},
	}
	// Both WAFs must block the attacks and pass the benign mix.
	if err := checkDetection(ctx, plainURL, attacksFor(nil)); err != nil {
		return fmt.Errorf("plain Coraza+CRS: %w", err)
	}
	if err := checkDetection(ctx, tgURL, attacksFor(prot)); err != nil {
		return fmt.Errorf("taskguard WAF: %w", err)
	}
	fmt.Fprintf(out, "loopback, %d connections, %v warm-up then %v x %d rounds per target, benign mix of %d requests, protections %s\n",
		c.concurrency, c.warmup, c.duration, c.rounds, len(benign), c.protections)
	if c.warmup > 0 {
		w := c
		w.duration = c.warmup
		for _, t := range targets {
			if _, err := load(ctx, t.url, w); err != nil {
				return fmt.Errorf("%s: warm-up: %w", t.name, err)
			}
		}
	}
	results := make([]result, len(targets))
	for round := 0; round < c.rounds; round++ {
		for i, t := range targets {
			stop, err := profileIf(c.cpuprofile != "" && t.url == tgURL && round == c.rounds-1, c.cpuprofile)
			if err != nil {
				return err
			}
			r, err := load(ctx, t.url, c)
			stop()
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			results[i].merge(r)
		}
	}
	report(out, targets, results)
	return nil
}

// profileIf starts a CPU profile into path when on; stop ends it.
func profileIf(on bool, path string) (stop func(), err error) {
	if !on {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func protections(s string) (map[policy.Protection]policy.Effect, error) {
	m := map[policy.Protection]policy.Effect{}
	if s == "all" {
		for _, p := range policy.Protections {
			m[p] = policy.EffectPrevent
		}
		return m, nil
	}
	for _, name := range strings.Split(s, ",") {
		p := policy.Protection(strings.TrimSpace(name))
		if !p.Valid() {
			return nil, fmt.Errorf("unknown protection %q (known: %v)", p, policy.Protections)
		}
		m[p] = policy.EffectPrevent
	}
	return m, nil
}

// appHandler is the protected app: a small JSON answer after reading the body.
func appHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"items":[{"id":1,"name":"blue shoes"},{"id":2,"name":"red hat"}],"page":2}`)
}

func newBareProxy(u *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second},
	}
}

func serve(ctx context.Context, h http.Handler) (*url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
}

// request is one request of the mix.
type request struct {
	method, path, contentType, body string
}

// benchHost is the Host header of every request (-host).
var benchHost = "shop.example.com"

// seq numbers requests: each gets its own session cookie.
var seq atomic.Uint64

// benign is a small, realistic mix: page and API reads, a search, a form post
// and a JSON post, all with browser-like headers. "%d" is replaced by a
// per-request number, so query values, bodies and the session cookie differ
// from request to request as they do in real traffic.
var benign = []request{
	{"GET", "/", "", ""},
	{"GET", "/api/items?page=%d&sort=name&order=asc", "", ""},
	{"GET", "/search?q=blue+running+shoes+%d&size=42", "", ""},
	{"GET", "/static/app.3f9c2a.js?v=%d", "", ""},
	{"POST", "/login", "application/x-www-form-urlencoded", "user=alice%%40example.com&password=correct+horse+battery+%d&remember=on"},
	{"POST", "/api/orders", "application/json", `{"items":[{"sku":"SH-42-BLU","qty":%d}],"shipping":{"city":"Lyon","zip":"69001"},"note":"leave at the door"}`},
}

// vary fills in the per-request number of a benign request.
func vary(r request, n int) request {
	if strings.Contains(r.path, "%d") {
		r.path = fmt.Sprintf(r.path, n)
	}
	if strings.Contains(r.body, "%d") {
		r.body = fmt.Sprintf(r.body, n)
	}
	return r
}

// attacks must be blocked by both WAFs (by the taskguard proxy when their
// protection is on) before anything is measured.
var attacks = map[policy.Protection]request{
	policy.ProtectionSQLi: {"POST", "/", "application/json", `{"-1+union+all+select+1,group_concat(user,0x3a,file_priv),3,4+from+mysql.user--"}`},
	policy.ProtectionXSS:  {"GET", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", ""},
	policy.ProtectionLFI:  {"GET", "/?file=..%2F..%2F..%2Fetc%2Fpasswd", "", ""},
}

// attacksFor returns the attacks of the enabled protections (nil: all).
func attacksFor(enabled map[policy.Protection]policy.Effect) []request {
	var out []request
	for _, p := range policy.Protections {
		if a, ok := attacks[p]; ok && (enabled == nil || enabled[p] == policy.EffectPrevent) {
			out = append(out, a)
		}
	}
	return out
}

func newRequest(ctx context.Context, base *url.URL, r request) (*http.Request, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base.String()+r.path, body)
	if err != nil {
		return nil, err
	}
	// A site's name, as traffic arriving through a load balancer carries
	// (-host "" keeps the listener's 127.0.0.1:port, which CRS itself
	// flags: 920350, a numeric Host header).
	if benchHost != "" {
		req.Host = benchHost
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-US,en;q=0.5")
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	req.Header.Set("Cookie", fmt.Sprintf("session=%016x%016x; theme=dark", seq.Add(1)*0x9e3779b97f4a7c15, seq.Load()))
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	return req, nil
}

func checkDetection(ctx context.Context, base *url.URL, attacks []request) error {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, set := range []struct {
		reqs []request
		want int
	}{{benign, http.StatusOK}, {attacks, http.StatusForbidden}} {
		for i, r := range set.reqs {
			req, err := newRequest(ctx, base, vary(r, i))
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			blocked := resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusBadRequest
			if (set.want == http.StatusOK) != (resp.StatusCode == http.StatusOK) || (set.want != http.StatusOK && !blocked) {
				return fmt.Errorf("%s %s: status %d, want %d", r.method, r.path, resp.StatusCode, set.want)
			}
		}
	}
	return nil
}

type target struct {
	name string
	url  *url.URL
	pid  int // the target's own process (wrk mode), 0 when shared or unknown
}

type result struct {
	n       int
	elapsed time.Duration
	lat     []time.Duration
	errs    int
}

func (r *result) merge(o result) {
	r.n += o.n
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	r.errs += o.errs
}

func (r *result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[int(q*float64(len(r.lat)-1))]
}

// load drives base with c.concurrency closed-loop workers for c.duration or
// c.max requests, whichever comes first.
func load(ctx context.Context, base *url.URL, c config) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	var issued atomic.Int64
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			client := &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()
			var lat []time.Duration
			errs := 0
			for i := w; ctx.Err() == nil && issued.Add(1) <= int64(c.max); i++ {
				req, err := newRequest(ctx, base, vary(benign[i%len(benign)], i))
				if err != nil {
					errs++
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.n += len(lat)
			res.errs += errs
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if res.n == 0 {
		return res, errors.New("no request succeeded")
	}
	return res, nil
}

func report(out io.Writer, targets []target, results []result) {
	direct := results[0]
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tp50\tp99\tadded p50\tadded p99\terrors\t")
	for i, t := range targets {
		r := results[i]
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%v\t%d\t\n", t.name, r.rps(), r.quantile(0.5).Round(time.Microsecond), r.quantile(0.99).Round(time.Microsecond),
			(r.quantile(0.5) - direct.quantile(0.5)).Round(time.Microsecond), (r.quantile(0.99) - direct.quantile(0.99)).Round(time.Microsecond), r.errs)
	}
	_ = tw.Flush()
	bare, plain, tg := results[1], results[2], results[3]
	added := func(r result, q float64) float64 {
		return float64(r.quantile(q) - direct.quantile(q))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "throughput ratio taskguard/bare = %.2fx  plain/bare = %.2fx  taskguard/plain = %.2fx\n", tg.rps()/bare.rps(), plain.rps()/bare.rps(), tg.rps()/plain.rps())
	fmt.Fprintf(&b, "added p50 taskguard/bare = %.2fx  plain/bare = %.2fx   added p99 taskguard/bare = %.2fx  plain/bare = %.2fx\n",
		added(tg, 0.5)/added(bare, 0.5), added(plain, 0.5)/added(bare, 0.5), added(tg, 0.99)/added(bare, 0.99), added(plain, 0.99)/added(bare, 0.99))
	_, _ = out.Write(b.Bytes())
}
