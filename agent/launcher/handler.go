package launcher

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// handler decides supervised calls with the current rule and queues audits.
type handler struct {
	id     policy.Identity
	taskID string
	rule   atomic.Pointer[policy.RuntimeRule]
	// pol is the whole current policy, for the inventory's custom checks.
	pol   atomic.Pointer[policy.Policy]
	queue chan api.Audit
	drops atomic.Int64
	log   *slog.Logger

	mu       sync.Mutex
	lastDeny map[int]string // per pid: the last refused exec, so PATH retries audit once
}

var _ supervise.Handler = (*handler)(nil)

func (h *handler) setPolicy(p *policy.Policy) {
	h.pol.Store(p)
	r := p.RuntimeFor(h.id)
	if r != nil {
		c := *r
		r = &c
	}
	h.rule.Store(r)
}

func (h *handler) emit(a api.Audit) {
	a.ID = audit.NewID()
	a.Time = audit.Now()
	a.TaskFamily, a.TaskID, a.Container, a.Image = h.id.TaskFamily, h.taskID, h.id.Container, h.id.Image
	select {
	case h.queue <- a:
	default:
		h.drops.Add(1)
	}
}

func severity(d policy.Decision) string {
	if d.Prevent() {
		return "high"
	}
	return "medium"
}

func verdict(d policy.Decision) supervise.Verdict {
	if d.Prevent() {
		return supervise.Deny
	}
	return supervise.Allow
}

func (h *handler) Exec(e supervise.ExecEvent) supervise.Verdict {
	r := h.rule.Load()
	if r == nil {
		return supervise.Allow
	}
	var aliases []string
	if e.Resolved != "" && e.Resolved != e.Path {
		aliases = append(aliases, e.Resolved)
	}
	d := r.CheckExec(e.Path, aliases...)
	if !d.Violation() {
		return supervise.Allow
	}
	// A shell retries a refused exec with every PATH entry that holds the
	// same program: one command, one audit.
	argv, parent := e.Args(), e.ParentExe()
	key := e.Resolved + "\x00" + strings.Join(argv, "\x00")
	h.mu.Lock()
	if h.lastDeny == nil {
		h.lastDeny = map[int]string{}
	}
	repeat := h.lastDeny[e.PID] == key
	h.lastDeny[e.PID] = key
	h.mu.Unlock()
	if !repeat || !d.Prevent() {
		h.emit(api.Audit{
			Kind: api.AuditProcess, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
			Message: audit.ExecMessage(e.Path, parent, argv, d),
			Process: &api.ProcessDetail{Path: e.Path, Parent: parent, Argv: argv, PID: e.PID},
		})
	}
	return verdict(d)
}

func (h *handler) DNS(e supervise.DNSEvent) supervise.Verdict {
	r := h.rule.Load()
	if r == nil {
		return supervise.Allow
	}
	v := supervise.Allow
	for _, name := range e.Names {
		d := r.CheckDomain(name)
		if !d.Violation() {
			continue
		}
		h.emit(api.Audit{
			Kind: api.AuditDNS, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
			Message: audit.DNSMessage(name),
			Process: &api.ProcessDetail{Path: e.Executable(), PID: e.PID},
			Network: &api.NetworkDetail{Direction: "dns", Domain: name, IP: e.Server.Addr().String(), Port: int(e.Server.Port())},
		})
		if d.Prevent() {
			v = supervise.Deny
		}
	}
	return v
}

func (h *handler) Connect(e supervise.ConnectEvent) supervise.Verdict {
	r := h.rule.Load()
	if r == nil {
		return supervise.Allow
	}
	d := r.CheckConnect(e.Addr)
	if !d.Violation() {
		return supervise.Allow
	}
	h.emit(api.Audit{
		Kind: api.AuditNetwork, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
		Message: audit.ConnectMessage(e.Addr.String(), e.Executable(), d),
		Process: &api.ProcessDetail{Path: e.Executable(), PID: e.PID},
		Network: &api.NetworkDetail{Direction: "outbound", IP: e.Addr.Addr().String(), Port: int(e.Addr.Port())},
	})
	return verdict(d)
}

func (h *handler) Listen(e supervise.ListenEvent) supervise.Verdict {
	r := h.rule.Load()
	if r == nil {
		return supervise.Allow
	}
	d := r.CheckListen(e.Port)
	if !d.Violation() {
		return supervise.Allow
	}
	h.emit(api.Audit{
		Kind: api.AuditNetwork, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
		Message: audit.ListenMessage(e.Port, e.Protocol, e.Executable(), d),
		Process: &api.ProcessDetail{Path: e.Executable(), PID: e.PID},
		Network: &api.NetworkDetail{Direction: "listen", Port: int(e.Port), Protocol: e.Protocol},
	})
	return verdict(d)
}

// Foreign refuses 32-bit system calls the tracer cannot decode when the rule
// prevents anything, so int 0x80 is no way around the policy.
func (h *handler) Foreign(pid, nr int) supervise.Verdict {
	r := h.rule.Load()
	if r == nil || (r.Processes.Effect != policy.EffectPrevent && r.Network.Effect != policy.EffectPrevent) {
		return supervise.Allow
	}
	h.emit(api.Audit{
		Kind: api.AuditProcess, Effect: policy.EffectPrevent, Rule: r.Name, Severity: "high",
		Message: "32-bit system call " + strconv.Itoa(nr) + " refused: it cannot be checked against the runtime rule",
		Process: &api.ProcessDetail{PID: pid},
	})
	return supervise.Deny
}

// startWriter sends queued audits to sink until stop is called; stop flushes
// what is queued (bounded by a few seconds) and reports dropped audits.
func (h *handler) startWriter(ctx context.Context, sink audit.Sink) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		send := func(a api.Audit) {
			if sink == nil {
				return
			}
			if err := sink.Send(ctx, []api.Audit{a}); err != nil {
				h.log.Warn("audit not delivered", "err", err, "message", a.Message)
			}
		}
		for {
			select {
			case a := <-h.queue:
				send(a)
			case <-done:
				for {
					select {
					case a := <-h.queue:
						send(a)
					default:
						if n := h.drops.Swap(0); n > 0 {
							send(api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditDefender, Effect: policy.EffectAlert,
								Severity: "high", Container: h.id.Container, TaskFamily: h.id.TaskFamily,
								Message: "Audit queue overflow: " + strconv.Itoa(int(n)) + " audits were dropped"})
						}
						return
					}
				}
			}
		}
	}()
	return func() {
		close(done)
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
		}
	}
}
