package launcher

import (
	"context"
	"fmt"
	"os"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// startsUnprotected says, in the log and in a high-severity defender audit,
// that the app starts without runtime protection (fail-open) and why. The
// audit goes to the sidecar, which delivers it to the console as soon as it
// can; with no sidecar it goes to Options.Audits, else to the container's
// stderr as a JSON line, so it still reaches the task's log.
func startsUnprotected(o Options, h *handler, why string) {
	o.Log.Warn("runtime protection is off: the app starts unprotected (fail-open; TASKGUARD_FAIL_CLOSED=1 refuses to start it)",
		"container", o.Identity.Container, "why", why)
	h.emit(api.Audit{
		Kind: api.AuditDefender, Effect: policy.EffectAlert, Severity: "high",
		Message: fmt.Sprintf("Runtime protection is off for container %s: %s; the app started unprotected (fail-open)", o.Identity.Container, why),
	})
}

// notStarted is the fail-closed end of a launch that found no policy: the
// audit is handed to the sidecar (it delivers it once it reaches the
// console) and the error says what to look at.
func notStarted(ctx context.Context, o Options, h *handler, cl *socket.Client, why string) error {
	o.Log.Error("the app is not started: no runtime protection (fail-closed)", "container", o.Identity.Container, "why", why)
	h.emit(api.Audit{
		Kind: api.AuditDefender, Effect: policy.EffectAlert, Severity: "high",
		Message: fmt.Sprintf("Container %s was not started: %s (fail-closed)", o.Identity.Container, why),
	})
	var sink audit.Sink = cl
	if o.Audits != nil {
		sink = o.Audits
	}
	h.startWriter(ctx, sink)() // flush the audit now
	return fmt.Errorf("%w: %s (fail-closed): the app was not started; the sidecar's log says why (console address, its certificate in TASKGUARD_CONSOLE_CA_PEM, the agent token)", ErrNoPolicy, why)
}

// flushUnsent delivers what is queued before the launcher becomes the app
// with nothing to supervise (no sidecar): to sink, else as JSON lines on the
// container's stderr.
func flushUnsent(ctx context.Context, o Options, h *handler, sink audit.Sink) {
	if len(h.queue) == 0 {
		return
	}
	if sink == nil {
		w := o.Files[2]
		if w == nil {
			w = os.Stderr
		}
		sink = audit.NewJSONLines(w)
	}
	h.startWriter(ctx, sink)()
}
