package server

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the console's Prometheus series, on a registry of their own so
// that several servers in one process (tests) do not collide.
type metrics struct {
	reg      *prometheus.Registry
	serve    http.Handler
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	audits   *prometheus.CounterVec
	lastSeen *prometheus.GaugeVec
	// longPolls counts the agent policy long-polls waiting for a change now.
	longPolls prometheus.Gauge

	// mu guards families and seq, and orders the lastSeen series' updates
	// with their deletion.
	mu sync.Mutex
	// families holds the task families seen, each with the sequence number
	// of its last sighting; at most maxFamilies of them (the most recently seen).
	families    map[string]uint64
	seq         uint64
	maxFamilies int
	seen        prometheus.Gauge
}

// maxFamiliesSeen bounds the task families a console process remembers for
// the defender metrics and the overview page. Every new family a defender
// brings (protect mints a credential for whatever family a task definition
// names) would otherwise add an entry and a series for the life of the
// process; past the bound, the families seen longest ago are forgotten.
// Tests lower it.
var maxFamiliesSeen = 10000

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskguard_console_http_requests_total",
			Help: "HTTP requests answered, by route, method (\"other\" for a method HTTP does not define) and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskguard_console_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route (long-polls included).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60},
		}, []string{"route"}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskguard_console_audits_ingested_total",
			Help: "Defender audit records received: stored, duplicate (already stored, a retried batch) or rejected (named in the answer, not stored).",
		}, []string{"result"}),
		lastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taskguard_console_defender_last_seen_timestamp_seconds",
			Help: "When a defender of the task family last fetched policy or posted audits.",
		}, []string{"task_family"}),
		longPolls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "taskguard_console_policy_long_polls_waiting",
			Help: "Defender policy long-polls waiting for a policy change in this console process.",
		}),
		seen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "taskguard_console_defender_task_families",
			Help: fmt.Sprintf("Task families whose defenders this console process has seen since it started (at most the %d seen most recently).", maxFamiliesSeen),
		}),
		families:    map[string]uint64{},
		maxFamilies: maxFamiliesSeen,
	}
	m.reg.MustRegister(m.requests, m.duration, m.audits, m.lastSeen, m.longPolls, m.seen,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.serve = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel is the method label of a request: its method when HTTP
// defines it, else "other". The method is the client's (any token up to
// the header limit, before authentication): used as is, every new one
// would add a series for the life of the process.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

func (m *metrics) auditsIngested(stored, duplicates, rejected int) {
	m.audits.WithLabelValues("stored").Add(float64(stored))
	m.audits.WithLabelValues("duplicate").Add(float64(duplicates))
	m.audits.WithLabelValues("rejected").Add(float64(rejected))
}

func (m *metrics) defenderSeen(family string) {
	if family == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	m.families[family] = m.seq
	m.lastSeen.WithLabelValues(family).SetToCurrentTime()
	if len(m.families) > m.maxFamilies {
		m.forgetOldest()
	}
	m.seen.Set(float64(len(m.families)))
}

// forgetOldest drops the families seen longest ago, and their series, down
// to nine tenths of maxFamilies (so that the sort is paid once per many new
// families, not for each). The caller holds m.mu.
func (m *metrics) forgetOldest() {
	type sighting struct {
		family string
		seq    uint64
	}
	all := make([]sighting, 0, len(m.families))
	for f, n := range m.families {
		all = append(all, sighting{f, n})
	}
	slices.SortFunc(all, func(a, b sighting) int { return cmp.Compare(a.seq, b.seq) })
	keep := max(m.maxFamilies*9/10, 1) // the family just seen stays
	for _, s := range all[:len(all)-keep] {
		delete(m.families, s.family)
		m.lastSeen.DeleteLabelValues(s.family)
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.serve.ServeHTTP(w, r)
}

// familiesSeen lists the task families whose defenders this process has seen.
func (m *metrics) familiesSeen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.families))
	for f := range m.families {
		out = append(out, f)
	}
	return out
}
