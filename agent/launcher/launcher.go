package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/detect"
	"github.com/taskguard/taskguard/agent/inventory"
	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/agent/supervise"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// ErrNotFound means the program to launch does not exist (exit code 127).
var ErrNotFound = errors.New("program not found")

// ErrProtectionOff means supervision could not start and the launcher is
// configured to fail closed.
var ErrProtectionOff = errors.New("runtime protection could not start")

// ErrNoPolicy means no policy arrived from the sidecar in time and the
// launcher is configured to fail closed: the app was not started.
var ErrNoPolicy = errors.New("no policy from the sidecar")

// Default waits for the sidecar's first policy: short when the app may start
// unprotected (fail-open), longer when it may not (fail-closed).
const (
	DefaultPolicyWait           = 5 * time.Second
	DefaultFailClosedPolicyWait = 60 * time.Second
)

// Options configure a launch.
type Options struct {
	// Identity is the protected container (from TASKGUARD_TASK, TASKGUARD_CONTAINER, TASKGUARD_IMAGE).
	Identity policy.Identity
	// TaskID goes into audits when known.
	TaskID string
	// SocketPath is the sidecar's socket; used when PolicyFile is empty.
	SocketPath string
	// PolicyFile, when set, is a local policy (standalone mode, no sidecar).
	PolicyFile string
	// Audits receives audits in standalone mode (nil: the sidecar, or none).
	Audits audit.Sink
	// FailClosed refuses to start the app unprotected: when supervision
	// cannot start, when there is no sidecar, and when no policy arrived
	// within PolicyWait (TASKGUARD_FAIL_CLOSED=1).
	FailClosed bool
	// Supervisor picks the mechanism: "ptrace" (the default), "usernotif"
	// (seccomp user notification), or "auto" (user notification when the
	// kernel offers it, else ptrace).
	Supervisor string
	// PolicyWait bounds the wait for the sidecar's first policy frame
	// (default DefaultPolicyWait, or DefaultFailClosedPolicyWait when
	// FailClosed).
	PolicyWait time.Duration
	// Inventory, when set, inventories this container's filesystem in the
	// background (low priority, after its delay) and sends the result to
	// the sidecar; only when a sidecar is connected.
	Inventory *inventory.Schedule
	Files     [3]*os.File
	Log       *slog.Logger
}

// Run launches argv with env under the policy and returns the app's status.
func Run(ctx context.Context, argv, env []string, o Options) (supervise.Status, error) {
	if len(argv) == 0 {
		return supervise.Status{}, errors.New("launch: no program given after --")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PolicyWait == 0 {
		o.PolicyWait = DefaultPolicyWait
		if o.FailClosed {
			o.PolicyWait = DefaultFailClosedPolicyWait
		}
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return supervise.Status{}, err
	}
	h := &handler{id: o.Identity, taskID: o.TaskID, queue: make(chan api.Audit, 4096), log: o.Log,
		det: &detect.Engine{Start: detect.KernelNow()}, self: os.Getpid(), entry: path}
	live := false
	sink := o.Audits
	switch {
	case o.PolicyFile != "":
		p, err := LoadPolicy(o.PolicyFile)
		if err != nil {
			return supervise.Status{}, err
		}
		h.setPolicy(p)
	default:
		cl, err := dialSidecar(o)
		if err != nil {
			if o.Identity.Container == "" {
				o.Log.Info("no sidecar; nothing to enforce", "err", err)
				break
			}
			// A protected container (its identity is set) expects a sidecar.
			if o.FailClosed {
				return supervise.Status{}, fmt.Errorf("%w (fail-closed): %v", ErrProtectionOff, err)
			}
			startsUnprotected(o, h, fmt.Sprintf("no sidecar (%v)", err))
			break
		}
		defer func() {
			if err := cl.Close(); err != nil {
				o.Log.Warn("audits lost at exit", "err", err)
			}
		}()
		live = true
		if sink == nil {
			sink = cl
		}
		first := make(chan struct{})
		var once sync.Once
		go func() {
			err := cl.Policies(func(p *policy.Policy) {
				if err := p.Validate(); err != nil {
					o.Log.Warn("sidecar sent an invalid policy; keeping the current one", "err", err)
					return
				}
				h.setPolicy(p)
				once.Do(func() { close(first) })
			})
			if err != nil && !errors.Is(err, net.ErrClosed) {
				o.Log.Warn("sidecar link ended", "err", err)
			}
		}()
		select {
		case <-first:
		case <-time.After(o.PolicyWait):
			why := fmt.Sprintf("no policy from the sidecar within %s", o.PolicyWait)
			if o.FailClosed {
				return supervise.Status{}, notStarted(ctx, o, h, cl, why)
			}
			startsUnprotected(o, h, why+"; protection starts when one arrives")
		}
		if o.Inventory != nil {
			sched := *o.Inventory
			if sched.Env == nil {
				sched.Env = env
			}
			if sched.Logger == nil {
				sched.Logger = o.Log
			}
			if sched.Policy == nil {
				sched.Policy = h.pol.Load
			}
			ictx, stop := context.WithCancel(ctx)
			defer stop()
			go inventory.Run(ictx, sched, cl.SendInventory)
		}
	}
	cfg := supervise.Config{Path: path, Argv: argv, Env: env, Files: o.Files}
	if !live && h.rule.Load() == nil {
		flushUnsent(ctx, o, h, sink)
		if os.Getpid() != 1 {
			// Nothing can ever be enforced: become the app.
			if err := unix.Exec(path, argv, env); err != nil {
				return supervise.Status{}, fmt.Errorf("exec %s: %w", path, err)
			}
		}
		return supervise.Run(cfg)
	}
	stopWriter := h.startWriter(ctx, sink)
	defer stopWriter()
	defer h.watchFiles(env)() // before the writer stops: the last file events get out
	cfg.Handler = h
	// A policy file is the policy for the whole run: when nothing in its
	// rule looks at what is sent (no domain rules, every detector off),
	// sends need no stop. With a sidecar the console may add such a rule
	// at any time, and the filter cannot change then: sends keep stopping.
	cfg.IgnoreSends = !live && !h.sendsNeeded(h.rule.Load())
	modes, err := supervisorModes(o.Supervisor)
	if err != nil {
		return supervise.Status{}, err
	}
	if !supervise.SpecAllowSupported() {
		o.Log.Debug("this kernel refuses SECCOMP_FILTER_FLAG_SPEC_ALLOW (before Linux 4.17): installing the filter may force the Speculative Store Bypass mitigation on for the app, which slows all of its code")
	}
	var st supervise.Status
	for _, m := range modes {
		cfg.Mode = m
		o.Log.Info("supervising", "mechanism", m.String(), "app", path)
		if st, err = supervise.Run(cfg); err == nil {
			return st, nil
		}
		o.Log.Info("supervision mechanism unavailable", "mechanism", m.String(), "err", err)
	}
	if o.FailClosed {
		h.emit(api.Audit{
			Kind: api.AuditDefender, Effect: policy.EffectAlert, Severity: "high",
			Message: fmt.Sprintf("Runtime protection is off for container %s: %v; the app was not started (fail-closed)", o.Identity.Container, err),
		})
		return supervise.Status{}, fmt.Errorf("%w (fail-closed): %v", ErrProtectionOff, err)
	}
	startsUnprotected(o, h, fmt.Sprintf("%v (supervision could not start)", err))
	cfg.Handler = nil
	return supervise.Run(cfg)
}

// supervisorModes turns the Supervisor option into the mechanisms to try, in order.
func supervisorModes(name string) ([]supervise.Mode, error) {
	switch name {
	case "", "ptrace":
		return []supervise.Mode{supervise.ModePtrace}, nil
	case "usernotif":
		return []supervise.Mode{supervise.ModeUserNotify}, nil
	case "auto":
		return []supervise.Mode{supervise.ModeUserNotify, supervise.ModePtrace}, nil
	}
	return nil, fmt.Errorf("supervisor %q: use ptrace, usernotif or auto", name)
}

// dialSidecar connects to the sidecar. In a protected container (identity
// set) the sidecar may still be starting, so it retries for PolicyWait.
func dialSidecar(o Options) (*socket.Client, error) {
	deadline := time.Now().Add(o.PolicyWait)
	for {
		cl, err := socket.Dial(o.SocketPath, o.Identity)
		if err == nil || o.Identity.Container == "" || time.Now().After(deadline) {
			return cl, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LoadPolicy reads and validates a policy file.
func LoadPolicy(path string) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	var p policy.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return &p, nil
}

// lookPath finds argv0 in the app's PATH, like the exec of a container runtime.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		if _, err := os.Stat(argv0); err != nil {
			return "", fmt.Errorf("%w: %s", ErrNotFound, argv0)
		}
		return argv0, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s in PATH %s", ErrNotFound, argv0, pathEnv)
}
