package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/taskguard/taskguard/agent/waf"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// wafProxies runs one agent/waf reverse proxy per WAF rule that applies to
// this task (its scope's task patterns match the family; container and image
// patterns name the app container behind the proxy), keyed by external port:
// the first such rule per port wins, as in policy order. A changed rule is
// swapped into the running proxy; a removed one stops its listener.
type wafProxies struct {
	ctx    context.Context
	family string
	addr   string // listen host, empty for every address of the task's namespace
	sink   func(api.Audit)
	log    *slog.Logger
	// proxyLog is handed to the proxies, which add their own component.
	proxyLog *slog.Logger

	mu      sync.Mutex
	running map[uint16]*runningProxy
	wg      sync.WaitGroup
}

type runningProxy struct {
	proxy  *waf.Proxy
	rule   policy.WAFRule
	cancel context.CancelFunc
}

func newWAFProxies(ctx context.Context, family, addr string, sink func(api.Audit), log *slog.Logger) *wafProxies {
	return &wafProxies{ctx: ctx, family: family, addr: addr, sink: sink, log: log.With("component", "waf"), proxyLog: log, running: map[uint16]*runningProxy{}}
}

// rulesFor returns, per external port, the first WAF rule for the family.
func rulesFor(p *policy.Policy, family string) map[uint16]policy.WAFRule {
	rules := map[uint16]policy.WAFRule{}
	for _, r := range p.WAF {
		s := policy.Scope{Tasks: r.Scope.Tasks}
		if !s.Matches(policy.Identity{TaskFamily: family}) {
			continue
		}
		if _, taken := rules[r.ExternalPort]; !taken {
			rules[r.ExternalPort] = r
		}
	}
	return rules
}

// set reconciles the running proxies with p.
func (w *wafProxies) set(p *policy.Policy) {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := rulesFor(p, w.family)
	for port, rp := range w.running {
		if _, ok := want[port]; !ok {
			w.log.Info("WAF rule removed: closing its port", "port", port, "rule", rp.rule.Name)
			rp.cancel()
			delete(w.running, port)
		}
	}
	for port, rule := range want {
		if rp, ok := w.running[port]; ok {
			if err := rp.proxy.SetRule(rule); err != nil {
				w.log.Error("WAF rule refused; keeping the previous one", "port", port, "rule", rule.Name, "err", err)
				continue
			}
			rp.rule = rule
			continue
		}
		if err := w.start(port, rule); err != nil {
			w.log.Error("WAF proxy not started", "port", port, "rule", rule.Name, "err", err)
		}
	}
}

func (w *wafProxies) start(port uint16, rule policy.WAFRule) error {
	id := policy.Identity{TaskFamily: w.family}
	if len(rule.Scope.Containers) == 1 && !strings.ContainsAny(rule.Scope.Containers[0], "*?[") {
		id.Container = rule.Scope.Containers[0]
	}
	proxy, err := waf.New(rule, waf.WithIdentity(id), waf.WithLogger(w.proxyLog),
		waf.WithAuditSink(func(_ context.Context, a api.Audit) { w.sink(a) }))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(w.addr, strconv.Itoa(int(port))))
	if err != nil {
		_ = proxy.Close()
		return fmt.Errorf("listen: %w", err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	w.running[port] = &runningProxy{proxy: proxy, rule: rule, cancel: cancel}
	w.log.Info("WAF proxy listening", "port", port, "app_port", rule.AppPort, "rule", rule.Name,
		"protections", slices.Sorted(func(yield func(string) bool) {
			for k := range rule.Protections {
				if !yield(string(k)) {
					return
				}
			}
		}))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := proxy.Serve(ctx, ln); err != nil {
			w.log.Error("WAF proxy stopped", "port", port, "err", err)
		}
		_ = proxy.Close()
	}()
	return nil
}

// wait stops nothing by itself: it returns once every proxy has ended (their
// contexts derive from the sidecar's).
func (w *wafProxies) wait() { w.wg.Wait() }
