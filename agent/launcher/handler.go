package launcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/detect"
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
	// queued is the size (auditSize) of the audits in queue: at most
	// maxQueuedBytes, besides the count the channel bounds.
	queued atomic.Int64
	drops  atomic.Int64
	log    *slog.Logger
	// det runs the built-in threat detectors (nil: none); self is the
	// launcher's pid, where an audit's process tree stops.
	det  *detect.Engine
	self int
	// entry is the program the launcher starts (the task definition's
	// command); its exec is exempt from the file-location detectors
	// (fileless, temp-dir, drift): the container's declared command is not
	// an intrusion wherever its file lies. entryDone marks the first exec
	// seen; entryCall is that exec when it was the entry's (its pid and
	// argv), so that the same call stopped again (an execve restarted after
	// a signal) stays exempt, while a later exec of the file with other
	// arguments, or by another process, does not.
	entry     string
	entryDone atomic.Bool
	entryCall atomic.Pointer[entryCall]

	mu sync.Mutex
	// lastDeny is, per pid, the last refused exec, so PATH retries audit
	// once. Bounded (maxLastDeny): the supervisor does not say when a
	// process ends, so an entry names its process by start time too, and a
	// full table drops the entries of processes that ended.
	lastDeny map[int]deniedExec
	// held are the audits of Deny verdicts, per pid, until the supervisor
	// says what became of them (Enforced): an audit never claims a refusal
	// that did not happen.
	held map[int][]func(audit.Enforcement) api.Audit

	// Verdicts of the current rule, by program and by destination: the
	// rule's checks parse CIDRs and match globs on every call, the cache
	// answers a repeat at once. Reset when the rule changes (a new policy
	// revision stores a new rule); bounded.
	cacheMu   sync.Mutex
	cacheRule *policy.RuntimeRule
	execs     map[string]policy.Decision
	connects  map[netip.AddrPort]policy.Decision
}

// maxCached bounds each verdict cache; a full cache starts again.
const maxCached = 4096

// maxLastDeny bounds lastDeny. A PATH retry comes right after the refusal
// it repeats, so only processes refused at the same moment need an entry.
const maxLastDeny = 256

// deniedExec is the last refused exec of one process: when the process
// started (so that a later process given the same pid is not taken for it)
// and a digest of the file and argv (which may be up to maxArgs strings of
// 4 KiB each: the table keeps 32 bytes, not the command).
type deniedExec struct {
	start uint64
	sum   [sha256.Size]byte
}

// repeatDenied records that pid's exec named key is refused, and reports
// whether it repeats the process's last refused exec (mu held).
func (h *handler) repeatDeniedLocked(pid int, key string) bool {
	d := deniedExec{start: procStart(pid), sum: sha256.Sum256([]byte(key))}
	prev, ok := h.lastDeny[pid]
	if !ok && len(h.lastDeny) >= maxLastDeny {
		// Forget the processes that ended (or whose pid another one took);
		// if every one lives on, start again: at worst a retry that was
		// under way is audited twice.
		for p, e := range h.lastDeny {
			if procStart(p) != e.start {
				delete(h.lastDeny, p)
			}
		}
		if len(h.lastDeny) >= maxLastDeny {
			clear(h.lastDeny)
		}
	}
	if h.lastDeny == nil {
		h.lastDeny = map[int]deniedExec{}
	}
	h.lastDeny[pid] = d
	return ok && prev == d
}

// procStart is when process (or thread) pid started, in clock ticks since
// boot (/proc/PID/stat field 22); 0 when it cannot be read (it ended).
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which ends at the last ')':
	// state is field 3, starttime field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// cachedLocked resets the caches when r is not the rule they hold (cacheMu held).
func (h *handler) cachedLocked(r *policy.RuntimeRule) {
	if h.cacheRule != r {
		h.cacheRule = r
		h.execs = map[string]policy.Decision{}
		h.connects = map[netip.AddrPort]policy.Decision{}
	}
}

// checkExec is r.CheckExec, cached per (called path, resolved file).
func (h *handler) checkExec(r *policy.RuntimeRule, path, resolved string) policy.Decision {
	key := path + "\x00" + resolved
	h.cacheMu.Lock()
	h.cachedLocked(r)
	d, ok := h.execs[key]
	h.cacheMu.Unlock()
	if ok {
		return d
	}
	var aliases []string
	if resolved != "" && resolved != path {
		aliases = append(aliases, resolved)
	}
	d = r.CheckExec(path, aliases...)
	h.cacheMu.Lock()
	if h.cacheRule == r {
		if len(h.execs) >= maxCached {
			clear(h.execs)
		}
		h.execs[key] = d
	}
	h.cacheMu.Unlock()
	return d
}

// checkConnect is r.CheckConnect, cached per destination.
func (h *handler) checkConnect(r *policy.RuntimeRule, addr netip.AddrPort) policy.Decision {
	h.cacheMu.Lock()
	h.cachedLocked(r)
	d, ok := h.connects[addr]
	h.cacheMu.Unlock()
	if ok {
		return d
	}
	d = r.CheckConnect(addr)
	h.cacheMu.Lock()
	if h.cacheRule == r {
		if len(h.connects) >= maxCached {
			clear(h.connects)
		}
		h.connects[addr] = d
	}
	h.cacheMu.Unlock()
	return d
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
	n := auditSize(&a)
	if h.queued.Add(n) > maxQueuedBytes {
		h.queued.Add(-n)
		h.drops.Add(1)
		return
	}
	select {
	case h.queue <- a:
	default:
		h.queued.Add(-n)
		h.drops.Add(1)
	}
}

// maxQueuedBytes bounds the audits waiting for the sidecar by size: an
// audit may hold up to a few hundred KiB (an exec's command, cut to
// audit.MaxExecMessage and audit.MaxArgv, a threat's process tree of 16
// command lines), so the queue's 4,096 audits could hold gigabytes while
// the sidecar does not read. Past it, audits are dropped and counted as on
// a full queue.
const maxQueuedBytes = 64 << 20

// auditSize is about how many bytes a queued audit holds.
func auditSize(a *api.Audit) int64 {
	n := 512 + len(a.Message) + len(a.Rule) + len(a.Image) + len(a.TaskFamily) + len(a.TaskID) + len(a.Container)
	if p := a.Process; p != nil {
		n += len(p.Path) + len(p.CalledAs) + len(p.Parent) + len(p.SHA256)
		for _, s := range p.Argv {
			n += 16 + len(s)
		}
		for _, t := range p.Tree {
			n += 32 + len(t.Path)
			for _, s := range t.Argv {
				n += 16 + len(s)
			}
		}
	}
	if d := a.Network; d != nil {
		n += 128 + len(d.Domain)
	}
	if d := a.WAF; d != nil {
		n += 512 + len(d.Path) + len(d.Payload)
	}
	return int64(n)
}

// record emits the audit mk words, or holds it until Enforced when the call
// is to be refused.
func (h *handler) record(pid int, d policy.Decision, mk func(audit.Enforcement) api.Audit) {
	if !d.Prevent() {
		h.emit(mk(audit.Blocked))
		return
	}
	h.mu.Lock()
	if h.held == nil {
		h.held = map[int][]func(audit.Enforcement) api.Audit{}
	}
	h.held[pid] = append(h.held[pid], mk)
	h.mu.Unlock()
}

// Enforced emits the audits held for pid, worded for what really happened.
func (h *handler) Enforced(pid int, o supervise.Outcome, err error) {
	h.mu.Lock()
	held := h.held[pid]
	delete(h.held, pid)
	h.mu.Unlock()
	e := map[supervise.Outcome]audit.Enforcement{
		supervise.Refused: audit.Blocked, supervise.Killed: audit.Killed,
		supervise.Gone: audit.Ended, supervise.Unenforced: audit.NotEnforced,
		supervise.Interrupted: audit.Interrupted,
	}[o]
	if o != supervise.Refused && o != supervise.Interrupted {
		h.log.Warn("a supervised call could not be refused", "pid", pid, "outcome", o.String(), "err", err)
	}
	for _, mk := range held {
		a := mk(e)
		if e == audit.NotEnforced {
			a.Effect, a.Severity = policy.EffectAlert, "critical"
		}
		h.emit(a)
	}
	if len(held) == 0 && o != supervise.Refused && o != supervise.Interrupted {
		// A supervised call that could not even be read (or the repeat of
		// a refused exec, whose audit went out once, could not be refused).
		msg := "A supervised system call of process " + strconv.Itoa(pid) + " could not be checked or refused (" + errString(err) + ")"
		effect := policy.EffectPrevent
		switch o {
		case supervise.Killed:
			msg += "; the process was killed before the call ran"
		case supervise.Gone:
			msg += "; the process ended before the call ran"
		default:
			msg += "; the process could not be killed, so the call may have run"
			effect = policy.EffectAlert
		}
		h.emit(api.Audit{Kind: api.AuditDefender, Effect: effect, Severity: "high", Message: msg, Process: &api.ProcessDetail{PID: pid}})
	}
}

func errString(err error) string {
	if err == nil {
		return "no error given"
	}
	return err.Error()
}

// calledAs is the name a program was called by, kept when it differs from
// the file that really runs.
func calledAs(called, real string) string {
	if called == real {
		return ""
	}
	return called
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
	// The audits of this exec share its command (its digest, when it is
	// cut, is computed once).
	cmd := sync.OnceValue(func() *audit.Command { return audit.NewCommand(e.Args()) })
	v := h.detectExec(r, e, cmd)
	if r == nil {
		return v
	}
	d := h.checkExec(r, e.Path, e.Resolved)
	if !d.Violation() {
		return v
	}
	// A shell retries a refused exec with every PATH entry that holds the
	// same program: one command, one audit.
	argv, parent := e.Args(), e.ParentExe()
	key := e.Resolved + "\x00" + strings.Join(argv, "\x00")
	h.mu.Lock()
	repeat := h.repeatDeniedLocked(e.PID, key)
	h.mu.Unlock()
	if !repeat || !d.Prevent() {
		real := e.Resolved
		if real == "" {
			real = e.Path
		}
		// The audit's command is cut (the message to 16 KiB, the detail
		// to 64 KiB): an app may pass 1 MiB of argv, and whole it would
		// fill the queue of audits. The verdict above and the repeat's
		// key saw all of it.
		c := cmd()
		shown := c.Cut(audit.MaxArgv)
		h.record(e.PID, d, func(enf audit.Enforcement) api.Audit {
			return api.Audit{
				Kind: api.AuditProcess, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
				Message: audit.ExecCommandMessage(e.Path, parent, c, d, enf),
				Process: &api.ProcessDetail{Path: real, CalledAs: calledAs(e.Path, real), Parent: parent, Argv: shown, PID: e.PID},
			}
		})
	}
	return worst(verdict(d), v)
}

func (h *handler) DNS(e supervise.DNSEvent) supervise.Verdict {
	r := h.rule.Load()
	v := h.detectDNS(r, e)
	if r == nil {
		return v
	}
	for _, name := range e.Names {
		d := r.CheckDomain(name)
		if !d.Violation() {
			continue
		}
		exe, real := e.Executable(), e.RealExe()
		mk := func(enf audit.Enforcement) api.Audit {
			return api.Audit{
				Kind: api.AuditDNS, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
				Message: audit.DNSMessageAs(name, d, enf),
				Process: &api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real), PID: e.PID},
				Network: &api.NetworkDetail{Direction: "dns", Domain: name, IP: e.Server.Addr().String(), Port: int(e.Server.Port())},
			}
		}
		if e.Relayed {
			// The relay refuses the query itself: it never reaches the server.
			h.emit(mk(audit.Blocked))
		} else {
			h.record(e.PID, d, mk)
		}
		if d.Prevent() {
			v = supervise.Deny
		}
	}
	return v
}

func (h *handler) Connect(e supervise.ConnectEvent) supervise.Verdict {
	r := h.rule.Load()
	v := h.detectConnect(r, e)
	if r == nil {
		return v
	}
	d := h.checkConnect(r, e.Addr)
	if !d.Violation() {
		return v
	}
	exe, real := e.Executable(), e.RealExe()
	h.record(e.PID, d, func(enf audit.Enforcement) api.Audit {
		return api.Audit{
			Kind: api.AuditNetwork, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
			Message: audit.ConnectMessageAs(e.Addr.String(), exe, d, enf),
			Process: &api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real), PID: e.PID},
			Network: &api.NetworkDetail{Direction: "outbound", IP: e.Addr.Addr().String(), Port: int(e.Addr.Port())},
		}
	})
	return worst(verdict(d), v)
}

func (h *handler) Listen(e supervise.ListenEvent) supervise.Verdict {
	r := h.rule.Load()
	v := h.detectListen(r, e)
	if r == nil {
		return v
	}
	d := r.CheckListen(e.Port)
	if !d.Violation() {
		return v
	}
	exe, real := e.Executable(), e.RealExe()
	h.record(e.PID, d, func(enf audit.Enforcement) api.Audit {
		return api.Audit{
			Kind: api.AuditNetwork, Effect: d.Effect, Rule: r.Name, Severity: severity(d),
			Message: audit.ListenMessageAs(e.Port, e.Protocol, exe, d, enf),
			Process: &api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real), PID: e.PID},
			Network: &api.NetworkDetail{Direction: "listen", Port: int(e.Port), Protocol: e.Protocol},
		}
	})
	return worst(verdict(d), v)
}

// Foreign refuses 32-bit system calls the tracer cannot decode when the rule
// prevents anything, so int 0x80 is no way around the policy.
func (h *handler) Foreign(pid, nr int) supervise.Verdict {
	r := h.rule.Load()
	if r == nil || (r.Processes.Effect != policy.EffectPrevent && r.Network.Effect != policy.EffectPrevent) {
		return supervise.Allow
	}
	// A call that cannot be checked is outside what the rule allows: the
	// decision is a prevented violation, so its audit waits for the
	// supervisor's outcome like any other refusal.
	h.record(pid, policy.Decision{Effect: policy.EffectPrevent, Reason: policy.ReasonNotAllowed}, func(enf audit.Enforcement) api.Audit {
		msg := "32-bit system call " + strconv.Itoa(nr) + " refused: it cannot be checked against the runtime rule"
		if enf != audit.Blocked {
			msg = "32-bit system call " + strconv.Itoa(nr) + " cannot be checked against the runtime rule; " + outcomeWords(enf)
		}
		return api.Audit{
			Kind: api.AuditProcess, Effect: policy.EffectPrevent, Rule: r.Name, Severity: "high",
			Message: msg, Process: &api.ProcessDetail{PID: pid},
		}
	})
	return supervise.Deny
}

func outcomeWords(e audit.Enforcement) string {
	switch e {
	case audit.Killed:
		return "it could not be refused, so the process was killed before it ran"
	case audit.Ended:
		return "the process ended before it was refused; it did not run"
	case audit.Interrupted:
		return "it was refused, but a signal interrupted it before the answer and it was not made again; it did not run"
	}
	return "it could be neither refused nor its process killed, so it may have run"
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
				h.queued.Add(-auditSize(&a))
				send(a)
			case <-done:
				for {
					select {
					case a := <-h.queue:
						h.queued.Add(-auditSize(&a))
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

// entryCall is the launched program's own exec: its caller and argv.
type entryCall struct {
	pid  int
	argv []string
}
