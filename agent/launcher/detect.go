package launcher

import (
	"slices"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/detect"
	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// worst is Deny when either verdict is.
func worst(a, b supervise.Verdict) supervise.Verdict {
	if a == supervise.Deny || b == supervise.Deny {
		return supervise.Deny
	}
	return supervise.Allow
}

// detecting reports whether any detector is on under r.
func (h *handler) detecting(r *policy.RuntimeRule) bool {
	if h.det == nil {
		return false
	}
	for _, d := range detect.All {
		if r.DetectorEffect(d.ID) != policy.EffectDisable {
			return true
		}
	}
	return false
}

// sendsNeeded reports whether r (nil: no rule) may need to see what the
// app sends: DNS queries, for its domain rules and the detectors, and
// first payloads, for the crypto-miner detector.
func (h *handler) sendsNeeded(r *policy.RuntimeRule) bool {
	return r == nil || len(r.Network.DeniedDomains) != 0 || len(r.Network.AllowedDomains) != 0 || h.detecting(r)
}

// report turns findings into audits (held until Enforced when they
// prevent) and returns Deny when one of them prevents. proc is the audit's
// process detail, filled with the tree and the file hash here, while the
// caller still waits. relayed findings (DNS relay) are refused by the relay
// itself: their audits go out at once.
func (h *handler) report(r *policy.RuntimeRule, pid int, fs []detect.Finding, proc api.ProcessDetail, net *api.NetworkDetail, relayed bool) supervise.Verdict {
	v := supervise.Allow
	var tree []api.ProcessAncestor
	for _, f := range fs {
		eff := r.DetectorEffect(f.Detector.ID)
		d := policy.Decision{Effect: eff, Reason: policy.ReasonDenied, Entry: f.Detector.ID}
		if !d.Violation() {
			continue
		}
		if tree == nil {
			tree = h.det.Tree(pid, h.self)
		}
		p := proc
		p.PID, p.Tree = pid, tree
		if f.File != "" && p.SHA256 == "" {
			p.SHA256 = h.det.Hash(pid, f.File)
		}
		rule := ""
		if r != nil {
			rule = r.Name
		}
		mk := func(enf audit.Enforcement) api.Audit {
			p := p
			return api.Audit{
				Kind: api.AuditThreat, Effect: eff, Rule: rule, Severity: threatSeverity(d),
				Detector: f.Detector.ID, Technique: f.Detector.Technique,
				Message: f.Message + threatWords(d, enf), Process: &p, Network: net,
			}
		}
		if relayed {
			h.emit(mk(audit.Blocked))
		} else {
			h.record(pid, d, mk)
		}
		if d.Prevent() {
			v = supervise.Deny
		}
	}
	return v
}

func threatSeverity(d policy.Decision) string {
	if d.Prevent() {
		return "critical"
	}
	return "high"
}

// threatWords says what became of the finding's call.
func threatWords(d policy.Decision, enf audit.Enforcement) string {
	if !d.Prevent() {
		return " (alert only)"
	}
	if enf == audit.Blocked {
		return "; blocked by detector " + d.Entry
	}
	return "; " + outcomeWords(enf)
}

// detectExec runs the exec detectors; cmd is the exec's command, shared
// with the exec's other audits.
func (h *handler) detectExec(r *policy.RuntimeRule, e supervise.ExecEvent, cmd func() *audit.Command) supervise.Verdict {
	if !h.detecting(r) {
		return supervise.Allow
	}
	fs := h.det.Exec(detect.Exec{PID: e.PID, Path: e.Path, Resolved: e.Resolved, Args: e.Args, Command: cmd, Ctime: e.Ctime})
	if h.isEntryExec(e) {
		fs = slices.DeleteFunc(fs, func(f detect.Finding) bool {
			return f.Detector.ID == detect.Fileless.ID || f.Detector.ID == detect.TempDir.ID || f.Detector.ID == detect.Drift.ID
		})
	}
	if len(fs) == 0 {
		return supervise.Allow
	}
	real := e.Resolved
	if real == "" {
		real = e.Path
	}
	return h.report(r, e.PID, fs, api.ProcessDetail{Path: real, CalledAs: calledAs(e.Path, real), Parent: e.ParentExe(), Argv: cmd().Cut(audit.MaxArgv)}, nil, false)
}

// isEntryExec reports whether e is the exec of the launched program itself:
// the first exec seen, when it is of the entry, or that same call again.
func (h *handler) isEntryExec(e supervise.ExecEvent) bool {
	first := !h.entryDone.Load() && h.entryDone.CompareAndSwap(false, true)
	if e.Path != h.entry {
		return false
	}
	if first {
		h.entryCall.Store(&entryCall{pid: e.PID, argv: e.Args()})
		return true
	}
	c := h.entryCall.Load()
	return c != nil && c.pid == e.PID && slices.Equal(c.argv, e.Args())
}

func (h *handler) detectConnect(r *policy.RuntimeRule, e supervise.ConnectEvent) supervise.Verdict {
	if !h.detecting(r) {
		return supervise.Allow
	}
	// The detectors name the caller only in a finding's message: read
	// its executable (a few /proc reads) only for a finding.
	if len(h.det.Connect(e.Addr, "")) == 0 {
		return supervise.Allow
	}
	fs := h.det.Connect(e.Addr, e.Executable())
	exe, real := e.Executable(), e.RealExe()
	return h.report(r, e.PID, fs, api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real)},
		&api.NetworkDetail{Direction: "outbound", IP: e.Addr.Addr().String(), Port: int(e.Addr.Port())}, false)
}

func (h *handler) detectDNS(r *policy.RuntimeRule, e supervise.DNSEvent) supervise.Verdict {
	if !h.detecting(r) {
		return supervise.Allow
	}
	v := supervise.Allow
	for _, name := range e.Names {
		if len(h.det.DNS(name, "")) == 0 { // as in detectConnect
			continue
		}
		fs := h.det.DNS(name, e.Executable())
		exe, real := e.Executable(), e.RealExe()
		v = worst(v, h.report(r, e.PID, fs, api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real)},
			&api.NetworkDetail{Direction: "dns", Domain: name, IP: e.Server.Addr().String(), Port: int(e.Server.Port())}, e.Relayed))
	}
	return v
}

func (h *handler) detectListen(r *policy.RuntimeRule, e supervise.ListenEvent) supervise.Verdict {
	if !h.detecting(r) {
		return supervise.Allow
	}
	exe, real := e.Executable(), e.RealExe()
	fs := h.det.Listen(e.PID, e.Port, e.Protocol, exe, real)
	if len(fs) == 0 {
		return supervise.Allow
	}
	return h.report(r, e.PID, fs, api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real)},
		&api.NetworkDetail{Direction: "listen", Port: int(e.Port), Protocol: e.Protocol}, false)
}

// The handler inspects the first payload of outbound connections (Stratum).
var _ supervise.PayloadHandler = (*handler)(nil)

// WantPayload asks for the first payload of every outbound connection while
// the crypto-miner detector is on (DNS has its own inspection).
func (h *handler) WantPayload(e supervise.ConnectEvent) bool {
	r := h.rule.Load()
	return h.det != nil && e.Addr.Port() != 53 && r.DetectorEffect(detect.Miner.ID) != policy.EffectDisable
}

// Payload runs the payload detectors on a connection's first send.
func (h *handler) Payload(e supervise.PayloadEvent) supervise.Verdict {
	r := h.rule.Load()
	if h.det == nil || r.DetectorEffect(detect.Miner.ID) == policy.EffectDisable {
		return supervise.Allow
	}
	fs := h.det.Payload(e.Addr, e.Data, e.Executable())
	if len(fs) == 0 {
		return supervise.Allow
	}
	exe, real := e.Executable(), e.RealExe()
	return h.report(r, e.PID, fs, api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real)},
		&api.NetworkDetail{Direction: "outbound", IP: e.Addr.Addr().String(), Port: int(e.Addr.Port())}, false)
}

var _ supervise.InjectHandler = (*handler)(nil)

// Inject runs the process-injection detector.
func (h *handler) Inject(e supervise.InjectEvent) supervise.Verdict {
	r := h.rule.Load()
	if !h.detecting(r) {
		return supervise.Allow
	}
	exe, real := e.Executable(), e.RealExe()
	return h.report(r, e.PID, h.det.Inject(e.Call, e.Target, exe), api.ProcessDetail{Path: real, CalledAs: calledAs(exe, real)}, nil, false)
}
