package waf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Defaults of the proxy's limits.
const (
	// DefaultInspectionLimit is how many body bytes are inspected, whole,
	// for a rule that sets no bodyLimit: Coraza's own default. What a rule
	// does with a larger body is its oversizeEffect.
	DefaultInspectionLimit = policy.DefaultWAFBodyLimit
	// DefaultBodyTimeout bounds reading the inspected part of a body, so a
	// slow client cannot hold a request in inspection forever.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultHeaderTimeout bounds reading request headers.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes idle keep-alive connections.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultAppWait is how long a request waits for the app's port while
	// nothing listens there (the app is starting); then it gets 503.
	DefaultAppWait = 10 * time.Second
	// DefaultBodyMemory bounds the body bytes (the proxy's copies and
	// Coraza's) that requests in flight may hold; a large body beyond it
	// gets 503 with Retry-After.
	DefaultBodyMemory = 128 << 20
	// retryAfterSeconds is the Retry-After of a 503 for an app not listening.
	retryAfterSeconds = "5"
)

// AuditSink receives one audit per inspected request that matched an alert or
// prevent protection, except rate-limit and bot findings, which are
// aggregated per client (the first at once, then one count per
// WithAlertWindow). It is called on the request's goroutine, or the
// proxy's own for counts, and must not block.
type AuditSink func(ctx context.Context, a api.Audit)

// Option configures a Proxy.
type Option func(*options)

type options struct {
	sink          AuditSink
	identity      policy.Identity
	limit         int
	paranoia      int
	bodyTimeout   time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
	upstreamHost  string
	appWait       time.Duration
	bodyMemory    int64
	alertWindow   time.Duration
	logger        *slog.Logger
}

// WithAuditSink sets where audits go. Without it audits are dropped.
func WithAuditSink(s AuditSink) Option { return func(o *options) { o.sink = s } }

// WithIdentity names the task and container the proxy protects; audits carry it.
func WithIdentity(id policy.Identity) Option { return func(o *options) { o.identity = id } }

// WithInspectionLimit sets how many body bytes are inspected for rules that
// set no bodyLimit (default DefaultInspectionLimit).
func WithInspectionLimit(n int) Option { return func(o *options) { o.limit = n } }

// WithParanoiaLevel sets the CRS paranoia level, 1 (default) to 4.
func WithParanoiaLevel(pl int) Option { return func(o *options) { o.paranoia = pl } }

// WithTimeouts sets the header, inspected-body and idle timeouts; zero keeps a default.
func WithTimeouts(header, body, idle time.Duration) Option {
	return func(o *options) {
		if header > 0 {
			o.headerTimeout = header
		}
		if body > 0 {
			o.bodyTimeout = body
		}
		if idle > 0 {
			o.idleTimeout = idle
		}
	}
}

// WithAppWait sets how long a request waits for the app's port to accept
// connections (default DefaultAppWait) before it is answered 503 with
// Retry-After; zero answers at once.
func WithAppWait(d time.Duration) Option { return func(o *options) { o.appWait = max(d, 0) } }

// WithBodyMemory sets the body memory budget (default DefaultBodyMemory).
// Bodies up to 64 KiB are not counted; a larger one reserves twice its size
// (at most twice the rule's bodyLimit) while its request is in flight.
func WithBodyMemory(n int64) Option { return func(o *options) { o.bodyMemory = n } }

// WithAlertWindow sets how long the rate-limit and bot findings of one
// client are counted before their summary audit (default
// DefaultAlertWindow): the first finding of a client is audited at once,
// the next ones once per window as a count.
func WithAlertWindow(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.alertWindow = d
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Proxy is the WAF reverse proxy of one WAF rule. It is an http.Handler; Serve
// runs it on a listener. Its rule can be swapped while it serves.
type Proxy struct {
	opts      options
	eng       atomic.Pointer[engine]
	transport *http.Transport

	inspected, passed, alerted, prevented, badRequests, fastPath atomic.Uint64
	// busy counts requests refused for the body memory budget.
	busy atomic.Uint64
	// bodyMemory is the budget of body bytes held by requests in flight.
	bodyMemory *semaphore.Weighted
	// appRefused counts dials to the app that were refused (nothing listening).
	appRefused atomic.Uint64
	// alerts aggregates the rate-limit and bot audits per client.
	alerts *alertAggregator
}

// Stats counts what the proxy decided since it started, one counter per
// outcome (the sidecar logs them when a proxy stops).
type Stats struct {
	// Inspected is every request that reached inspection.
	Inspected uint64
	// Passed were forwarded without an audit.
	Passed uint64
	// Alerted were forwarded and audited (effect alert).
	Alerted uint64
	// Prevented were answered with the block page and audited (effect prevent).
	Prevented uint64
	// BadRequests could not be read (slow or broken body) and got 400.
	BadRequests uint64
	// Busy were large bodies refused with 503 because the body memory
	// budget was in use by other requests.
	Busy uint64
	// FastPath were inspected in both request phases by the gate alone:
	// it proved that no rule of the enabled families could match.
	FastPath uint64
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Inspected:   p.inspected.Load(),
		Passed:      p.passed.Load(),
		Alerted:     p.alerted.Load(),
		Prevented:   p.prevented.Load(),
		BadRequests: p.badRequests.Load(),
		Busy:        p.busy.Load(),
		FastPath:    p.fastPath.Load(),
	}
}

var _ http.Handler = (*Proxy)(nil)

// New compiles rule and returns its proxy. The rule is validated first; a rule
// that does not validate returns an error naming the bad fields.
func New(rule policy.WAFRule, opts ...Option) (*Proxy, error) {
	o := options{
		limit:         DefaultInspectionLimit,
		paranoia:      1,
		bodyTimeout:   DefaultBodyTimeout,
		headerTimeout: DefaultHeaderTimeout,
		idleTimeout:   DefaultIdleTimeout,
		upstreamHost:  "127.0.0.1",
		appWait:       DefaultAppWait,
		bodyMemory:    DefaultBodyMemory,
		alertWindow:   DefaultAlertWindow,
		logger:        slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.limit < 0 {
		return nil, fmt.Errorf("waf: inspection limit %d is negative", o.limit)
	}
	o.logger = o.logger.With("component", "waf", "rule", rule.Name)
	if o.bodyMemory <= 0 {
		return nil, fmt.Errorf("waf: body memory budget %d is not positive", o.bodyMemory)
	}
	p := &Proxy{opts: o, bodyMemory: semaphore.NewWeighted(o.bodyMemory)}
	p.alerts = newAlertAggregator(o.alertWindow, func(a api.Audit) {
		if p.opts.sink != nil {
			p.opts.sink(context.Background(), a)
		}
	})
	p.transport = &http.Transport{
		DialContext:           p.dialApp,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if err := p.SetRule(rule); err != nil {
		return nil, err
	}
	return p, nil
}

// SetRule compiles rule and, only if that succeeds, makes it the proxy's rule
// for the requests that follow. Requests in flight finish under the old rule.
func (p *Proxy) SetRule(rule policy.WAFRule) error {
	limit := p.opts.limit
	if rule.BodyLimit > 0 {
		limit = int(rule.BodyLimit)
	}
	e, err := newEngine(rule, p.opts.paranoia, limit)
	if err != nil {
		return err
	}
	if old := p.eng.Load(); old != nil && old.checks.rate != nil && e.checks.rate != nil && old.checks.rate.cfg == e.checks.rate.cfg {
		// The same limit: clients keep what they have spent.
		e.checks.rate = old.checks.rate
	}
	e.upstream = p.reverseProxy(rule.AppPort)
	if old := p.eng.Swap(e); old != nil {
		// Releases the old rule set's share of Coraza's compiled-pattern
		// cache; requests in flight keep their own references.
		if c, ok := old.waf.(io.Closer); ok {
			_ = c.Close()
		}
	}
	return nil
}

// Close releases what the proxy holds beyond its listener: idle upstream
// connections and its share of Coraza's compiled-pattern cache, and audits
// the rate-limit and bot findings still counted. Call it once Serve has
// returned and the proxy will not serve again.
func (p *Proxy) Close() error {
	p.alerts.flush()
	p.transport.CloseIdleConnections()
	if c, ok := p.eng.Load().waf.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Rule returns the rule the proxy applies now.
func (p *Proxy) Rule() policy.WAFRule { return p.eng.Load().rule }

// Serve accepts connections on ln (HTTP/1.1 and cleartext HTTP/2) until ctx
// is done, then shuts down gracefully. It closes ln.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	// Requests outlive ctx by the graceful shutdown only; upgraded
	// (WebSocket) connections, which Shutdown does not track, end with it.
	reqCtx, endRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer endRequests()
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.opts.headerTimeout,
		IdleTimeout:       p.opts.idleTimeout,
		MaxHeaderBytes:    64 << 10,
		Protocols:         protocols,
		ErrorLog:          slog.NewLogLogger(p.opts.logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	alertsCtx, stopAlerts := context.WithCancel(ctx)
	defer stopAlerts()
	go p.alerts.run(alertsCtx)
	// The counts of the last window are audited once no request is left.
	defer p.alerts.flush()
	select {
	case err := <-errc:
		return fmt.Errorf("waf: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		_ = srv.Close()
	}
	endRequests()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("waf: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// ServeHTTP is the request path: read the inspected body prefix, inspect,
// decide (audit, block), forward.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := p.eng.Load()
	client, known := e.checks.clients.addr(r)
	// The rule's own checks first: sources and rate limit need no body.
	var alerts []finding
	for _, f := range e.checks.beforeBody(r, client, known) {
		if f.effect == policy.EffectPrevent {
			p.auditAll(r.Context(), e, r, client, alerts)
			p.refuse(w, r, e, client, f)
			return
		}
		alerts = append(alerts, f)
	}
	body, truncated, release, err := p.readBody(w, r, e.bodyLimit, e.oversize == policy.EffectPrevent)
	defer release()
	if errors.Is(err, errBusy) {
		p.busy.Add(1)
		p.opts.logger.WarnContext(r.Context(), "request body refused: the body memory budget is in use", "budget", p.opts.bodyMemory, "source", r.RemoteAddr, "length", r.ContentLength)
		p.auditAll(r.Context(), e, r, client, alerts)
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the server is busy with other large requests; retry shortly", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		p.badRequests.Add(1)
		p.opts.logger.DebugContext(r.Context(), "read request body", "err", err, "source", r.RemoteAddr)
		p.auditAll(r.Context(), e, r, client, alerts)
		http.Error(w, "request body could not be read", http.StatusBadRequest)
		return
	}
	p.inspected.Add(1)
	if truncated && e.oversize == policy.EffectPrevent {
		p.auditAll(r.Context(), e, r, client, alerts)
		// The rest of the body is not read: the connection cannot be reused.
		w.Header().Set("Connection", "close")
		p.refuse(w, r, e, client, finding{protection: protectionBodyLimit, effect: policy.EffectPrevent, severity: "medium",
			note:   fmt.Sprintf("body larger than the inspection limit of %d bytes%s", e.bodyLimit, declaredLength(r)),
			status: http.StatusRequestEntityTooLarge})
		return
	}
	for _, f := range e.checks.afterBody(r.Context(), r, body, truncated) {
		if f.effect == policy.EffectPrevent {
			p.auditAll(r.Context(), e, r, client, alerts)
			p.refuse(w, r, e, client, f)
			return
		}
		alerts = append(alerts, f)
	}
	p.auditAll(r.Context(), e, r, client, alerts)
	v := e.inspect(r, body, truncated)
	if v.argsCut && e.oversize == policy.EffectPrevent && v.effect != policy.EffectPrevent {
		p.refuse(w, r, e, client, finding{protection: protectionBodyLimit, effect: policy.EffectPrevent, severity: "medium",
			note:   fmt.Sprintf("more than %d arguments, the inspection limit", argumentsLimit),
			status: http.StatusRequestEntityTooLarge})
		return
	}
	if (truncated || v.argsCut) && e.oversize == policy.EffectAlert {
		if v.effect == policy.EffectDisable {
			// Matches below the anomaly threshold are no finding of their own.
			v = verdict{effect: policy.EffectAlert, severity: "medium", gated: v.gated}
		}
		v.protections = append(v.protections, protectionBodyLimit)
		if truncated {
			v.note = fmt.Sprintf("body not inspected beyond %d bytes%s", e.bodyLimit, declaredLength(r))
		} else {
			v.note = fmt.Sprintf("arguments not inspected beyond %d", argumentsLimit)
		}
	}
	if v.gated == 2 {
		p.fastPath.Add(1)
	}
	switch v.effect {
	case policy.EffectPrevent:
		p.prevented.Add(1)
		eventID := newEventID()
		p.audit(r.Context(), e, r, client, v, eventID)
		writeBlockPage(w, eventID)
		return
	case policy.EffectAlert:
		p.alerted.Add(1)
		p.audit(r.Context(), e, r, client, v, newEventID())
	default:
		if len(alerts) > 0 {
			p.alerted.Add(1)
		} else {
			p.passed.Add(1)
		}
	}
	e.upstream.ServeHTTP(w, r)
}

// refuse answers a request that a check prevents, with its audit.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, e *engine, client netip.Addr, f finding) {
	p.prevented.Add(1)
	eventID := p.auditFinding(r.Context(), e, r, client, f)
	if f.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfter(f.retryAfter))
	}
	writeStatusPage(w, f.status, eventID)
}

// auditAll audits the alert findings of a request, one audit each.
func (p *Proxy) auditAll(ctx context.Context, e *engine, r *http.Request, client netip.Addr, fs []finding) {
	for _, f := range fs {
		p.auditFinding(ctx, e, r, client, f)
	}
}

// auditFinding audits one finding of the rule's own checks and returns
// the event ID the request's answer shows. Rate-limit and bot findings go
// through the aggregator: the first of a client is audited at once, the
// next ones are counted into one summary per window, whose event ID they
// show.
func (p *Proxy) auditFinding(ctx context.Context, e *engine, r *http.Request, client netip.Addr, f finding) string {
	if aggregated(f.protection) {
		id, now := p.alerts.note(aggKey{rule: e.rule.Name, client: clientName(r, client), protection: f.protection}, f, r, p.opts.identity)
		if now {
			p.audit(ctx, e, r, client, f.verdict(), id)
		}
		return id
	}
	id := newEventID()
	p.audit(ctx, e, r, client, f.verdict(), id)
	return id
}

// smallBody is the body size read without a reservation from the proxy's
// body memory budget.
const smallBody = 64 << 10

// errBusy is a body that would exceed the proxy's body memory budget.
var errBusy = errors.New("too many large request bodies in flight")

// readBody reads the body, up to limit bytes, under the body timeout. When
// the body is larger (truncated), the bytes read are put back in front of
// the rest, which streams on to the app uninspected if the rule lets it;
// with refuseOversized, a body whose Content-Length is over the limit is not
// read at all. A body over smallBody first reserves twice its size (the
// copy here and Coraza's) from the body memory budget; release gives it
// back, once the request is done.
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request, limit int, refuseOversized bool) (body []byte, truncated bool, release func(), err error) {
	release = func() {}
	if r.Body == nil || r.Body == http.NoBody || limit == 0 {
		return nil, r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody, release, nil
	}
	reserve := func(n int64) bool {
		// A body larger than the whole budget may still have it all.
		n = min(2*n, p.opts.bodyMemory)
		if !p.bodyMemory.TryAcquire(n) {
			return false
		}
		release = func() { p.bodyMemory.Release(n) }
		return true
	}
	if r.ContentLength > int64(limit) && refuseOversized {
		return nil, true, release, nil
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(p.opts.bodyTimeout)) // not every transport supports it
	var buf []byte
	if r.ContentLength >= 0 {
		truncated = r.ContentLength > int64(limit)
		n := min(r.ContentLength, int64(limit))
		if n > smallBody && !reserve(n) {
			return nil, false, release, errBusy
		}
		buf = make([]byte, n)
		var got int
		got, err = io.ReadFull(r.Body, buf)
		buf = buf[:got]
	} else { // chunked: size unknown, grow as it comes; one byte more tells
		first := min(limit, smallBody)
		buf, err = io.ReadAll(io.LimitReader(r.Body, int64(first)+1))
		if err == nil && len(buf) > first && limit > first {
			if !reserve(int64(limit)) {
				return nil, false, release, errBusy
			}
			var more []byte
			more, err = io.ReadAll(io.LimitReader(r.Body, int64(limit+1-len(buf))))
			buf = append(buf, more...)
		}
		truncated = len(buf) > limit
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		// Keep the deadline: the server must not wait for the rest either.
		w.Header().Set("Connection", "close")
		release()
		return nil, false, func() {}, err
	}
	_ = rc.SetReadDeadline(time.Time{})
	r.Body = prefixedBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	return buf[:min(len(buf), limit)], truncated, release, nil
}

// declaredLength is ", N declared" for a body with a Content-Length.
func declaredLength(r *http.Request) string {
	if r.ContentLength > 0 {
		return fmt.Sprintf(" (%d declared)", r.ContentLength)
	}
	return ""
}

// copyBuffers is the ReverseProxy's pool of response copy buffers.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte { return copyBufferPool.Get().(*[32 << 10]byte)[:] }

func (copyBuffers) Put(b []byte) {
	if cap(b) == 32<<10 {
		copyBufferPool.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}

type prefixedBody struct {
	io.Reader
	io.Closer
}

// reverseProxy returns the upstream handler that sends requests to the app
// on 127.0.0.1:appPort. Upgrades (WebSocket) are passed through after
// inspection by httputil.ReverseProxy itself, which also drops hop-by-hop
// headers and sets X-Forwarded-For, -Host and -Proto.
func (p *Proxy) reverseProxy(appPort uint16) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(p.opts.upstreamHost, strconv.Itoa(int(appPort)))}
	return &httputil.ReverseProxy{
		Transport: p.transport,
		// Without a pool, ReverseProxy allocates a 32 KiB copy buffer for
		// every response: most of the garbage of a small request.
		BufferPool: copyBuffers{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
				pr.Out.Header["X-Forwarded-For"] = prior
			}
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, syscall.ECONNREFUSED) {
				// Nothing listens on the app port: it is starting (or
				// restarting). Not a gateway failure; the client may retry.
				p.opts.logger.InfoContext(r.Context(), "app not listening yet", "app", target.Host, "waited", p.opts.appWait)
				w.Header().Set("Retry-After", retryAfterSeconds)
				http.Error(w, "the application is starting; retry shortly", http.StatusServiceUnavailable)
				return
			}
			p.opts.logger.WarnContext(r.Context(), "app unreachable", "app", target.Host, "err", err)
			http.Error(w, "upstream app unreachable", http.StatusBadGateway)
		},
	}
}

// dialApp connects to the app. While the app's port refuses connections
// (the app is still starting), it retries with backoff for up to the app
// wait, so that the first requests of a task wait for the app instead of
// failing.
func (p *Proxy) dialApp(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	deadline := time.Now().Add(p.opts.appWait)
	backoff := 20 * time.Millisecond
	for {
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			return conn, err
		}
		p.appRefused.Add(1)
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
