package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskguard/taskguard/internal/program"
)

// DefaultTimeout bounds a whole run (taskguard ci, image scan, sbom scan,
// db update, the GitHub Action's job) when the caller sets no bound. Trivy
// uses 5m; a first scan of a multi-gigabyte image together with a DB
// download (about 70 MB compressed) on a slow shared runner takes longer
// than that often enough, so taskguard allows twice as long. It is far
// below what a CI system waits for a hung job (GitHub: 6 hours).
const DefaultTimeout = 10 * time.Minute

// errTimeout is the cause of a context that a Timeout ended: it tells the
// bound's end from a cancellation of the parent (SIGINT, SIGTERM). It reads
// and matches (errors.Is) as context.DeadlineExceeded, which is what the
// HTTP client and the scanners put in their errors.
var errTimeout error = deadlineError{}

type deadlineError struct{}

func (deadlineError) Error() string        { return context.DeadlineExceeded.Error() }
func (deadlineError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout bounds a whole run: every network call (DB download, image pull,
// console) and every layer read gets the run's context, which ends at the
// bound, so a registry, mirror or proxy that accepts the connection and
// then never answers (or trickles a byte a minute) cannot hang the job.
type Timeout struct {
	// After is the bound; 0 means none.
	After time.Duration
	// Setting names the setting in errors: "--timeout", `input "timeout"`.
	Setting string
	// Example is how the caller writes the setting with a value, a format
	// with one %s for it: "--timeout %s", "timeout: %s".
	Example string
}

// Check refuses a negative bound.
func (t Timeout) Check() error {
	if t.After < 0 {
		return fmt.Errorf("%s %s: want a duration such as 10m or 1h30m, or 0 for no limit", t.Setting, t.After)
	}
	return nil
}

// Context returns ctx bounded by t.After (ctx itself, with a no-op cancel,
// for 0).
func (t Timeout) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	if t.After <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, t.After, errTimeout)
}

// StopGrace is how long Run waits for a run to return once its context
// ended before it gives up on it.
const StopGrace = 30 * time.Second

// Run runs fn under the bound (t.Context) and returns its error as Explain
// words it. Should fn not return within StopGrace of its context's end
// (some call in it does not heed the context), Run returns without it, with
// an error that says so: the caller, a program, then exits, which ends what
// still runs; the bound holds even then.
func (t Timeout) Run(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := t.Context(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return t.Explain(ctx, err)
	case <-ctx.Done():
	}
	grace := time.NewTimer(StopGrace)
	defer grace.Stop()
	select {
	case err := <-done:
		return t.Explain(ctx, err)
	case <-grace.C:
		return t.Explain(ctx, fmt.Errorf("the run did not stop within %s of its end (%w)", StopGrace, context.Cause(ctx)))
	}
}

// Explain turns err, the failure of a run under ctx (a context from
// t.Context), into one that says the run gave up at the bound and how to
// raise it, when the bound had passed by the time the run failed: whatever
// the error (a deadline, a connection closed under a read, a cancelled
// group), the run did not finish. Other errors, nil, and a gate's verdict
// (program.Blocked: the run finished) are returned as they are.
func (t Timeout) Explain(ctx context.Context, err error) error {
	if err == nil || program.Code(err) != program.ExitError || !errors.Is(context.Cause(ctx), errTimeout) {
		return err
	}
	raise := fmt.Sprintf(t.Example, t.suggest())
	return &gaveUpError{err: err, msg: fmt.Sprintf("gave up after %s (%s): %v; a slow registry or DB mirror, or a large image, may need more time, e.g. %s",
		t.After, t.Setting, err, raise)}
}

// ErrGaveUp matches (errors.Is) the errors of runs that gave up at their
// bound, as Explain and Run return them.
var ErrGaveUp = errors.New("gave up at the time bound")

type gaveUpError struct {
	msg string
	err error
}

func (e *gaveUpError) Error() string        { return e.msg }
func (e *gaveUpError) Unwrap() error        { return e.err }
func (e *gaveUpError) Is(target error) bool { return target == ErrGaveUp }

// suggest is a larger bound to propose: twice the bound, at least 10m.
func (t Timeout) suggest() time.Duration {
	return max(2*t.After, DefaultTimeout).Round(time.Second)
}

// ErrIncomplete returns an error when ctx ended (its bound passed, or it was
// cancelled) while what it names ran: a scan that returned nevertheless
// may have left part of the image unread (a file whose read failed is
// skipped with a warning), so its findings must not be reported as a
// result. Nil when ctx is still live.
func ErrIncomplete(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
