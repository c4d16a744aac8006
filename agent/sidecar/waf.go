package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/waf"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// wafs runs one WAF proxy per external port of the WAF rules that apply to
// the task, and follows policy changes: a changed rule is swapped live, a
// removed one stops, a new one starts listening.
type wafs struct {
	ctx    context.Context
	family string
	addr   string // listen host; "" means every address of the task
	audit  func(api.Audit)
	log    *slog.Logger

	mu      sync.Mutex
	running map[uint16]*runningWAF
	wg      sync.WaitGroup
}

type runningWAF struct {
	proxy *waf.Proxy
	stop  context.CancelFunc
	done  chan struct{}
}

func newWAFs(ctx context.Context, family, addr string, audit func(api.Audit), log *slog.Logger) *wafs {
	return &wafs{ctx: ctx, family: family, addr: addr, audit: audit, log: log, running: map[uint16]*runningWAF{}}
}

// apply brings the running proxies in line with p.
func (w *wafs) apply(p *policy.Policy) {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := map[uint16]policy.WAFRule{}
	for _, r := range p.WAFForTask(w.family) {
		want[r.ExternalPort] = r
	}
	for port, r := range w.running {
		rule, ok := want[port]
		if !ok {
			w.stopLocked(port)
			continue
		}
		if err := r.proxy.SetRule(rule); err != nil {
			w.log.Error("WAF rule not applied; keeping the previous one", "port", port, "rule", rule.Name, "err", err)
		}
		delete(want, port)
	}
	for port, rule := range want {
		if err := w.startLocked(port, rule); err != nil {
			w.log.Error("WAF proxy not started", "port", port, "rule", rule.Name, "err", err)
			w.audit(api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditDefender, Effect: policy.EffectAlert, Severity: "high", TaskFamily: w.family, Rule: rule.Name,
				Message: fmt.Sprintf("WAF rule %s could not listen on port %d: %v; the application is not protected there", rule.Name, port, err)})
		}
	}
}

func (w *wafs) startLocked(port uint16, rule policy.WAFRule) error {
	proxy, err := waf.New(rule,
		waf.WithIdentity(policy.Identity{TaskFamily: w.family, Container: protectedContainer(rule)}),
		waf.WithAuditSink(func(_ context.Context, a api.Audit) { w.audit(a) }),
		waf.WithLogger(w.log))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(w.addr, strconv.Itoa(int(port))))
	if err != nil {
		proxy.Close()
		return err
	}
	ctx, stop := context.WithCancel(w.ctx)
	r := &runningWAF{proxy: proxy, stop: stop, done: make(chan struct{})}
	w.running[port] = r
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(r.done)
		if err := proxy.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			w.log.Error("WAF proxy stopped", "port", port, "err", err)
		}
		proxy.Close()
		st := proxy.Stats()
		w.log.Info("WAF proxy totals", "port", port, "inspected", st.Inspected, "passed", st.Passed,
			"alerted", st.Alerted, "prevented", st.Prevented, "bad_requests", st.BadRequests, "busy", st.Busy, "fast_path", st.FastPath)
	}()
	w.log.Info("WAF proxy listening", "port", port, "app_port", rule.AppPort, "rule", rule.Name)
	return nil
}

func (w *wafs) stopLocked(port uint16) {
	r := w.running[port]
	delete(w.running, port)
	r.stop()
	<-r.done
	w.log.Info("WAF proxy stopped", "port", port)
}

// wait returns once every proxy has stopped (after the sidecar's context ends).
func (w *wafs) wait() { w.wg.Wait() }

// protectedContainer names the app container behind a WAF rule in its
// audits: the rule's container scope when it names exactly one container.
func protectedContainer(rule policy.WAFRule) string {
	if c := rule.Scope.Containers; len(c) == 1 && !strings.ContainsAny(c[0], "*?[") {
		return c[0]
	}
	return ""
}
