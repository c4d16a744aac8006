package command

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/agent/inventory"
	"github.com/taskguard/taskguard/agent/launcher"
	"github.com/taskguard/taskguard/agent/sidecar"
	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/program"
)

// New returns the taskguard-defender root command.
func New() *cobra.Command {
	root := &cobra.Command{
		Use:   "taskguard-defender",
		Short: "taskguard's in-task defender: the app launcher and the sidecar",
	}
	root.AddCommand(newEntrypoint(), newSidecar())
	return root
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})).With("program", "taskguard-defender")
}

// auditSink opens a JSON-lines destination: "-" is stdout, "" is none.
func auditSink(path string) (audit.Sink, io.Closer, error) {
	switch path {
	case "":
		return nil, io.NopCloser(nil), nil
	case "-":
		return audit.NewJSONLines(os.Stdout), io.NopCloser(nil), nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit file: %w", err)
	}
	return audit.NewJSONLines(f), f, nil
}

func newEntrypoint() *cobra.Command {
	var socketPath, policyFile, auditFile, logLevel, supervisor string
	var inventoryMode string
	var inventoryDelay, inventoryInterval, policyWait time.Duration
	var inventoryCPU float64
	var failClosed bool
	cmd := &cobra.Command{
		Use:   "entrypoint [flags] -- ARGV...",
		Short: "Run the app's argv under runtime protection (the container's entryPoint prefix)",
		Long: `Runs ARGV as a child under syscall supervision and enforces the runtime rule that
matches this container (TASKGUARD_TASK, TASKGUARD_CONTAINER, TASKGUARD_IMAGE). The exit
status is the app's own. Every flag has an environment variable, since an ECS entryPoint
is fixed: TASKGUARD_SOCKET, TASKGUARD_POLICY_FILE, TASKGUARD_AUDIT_FILE,
TASKGUARD_FAIL_CLOSED=1, TASKGUARD_POLICY_WAIT, TASKGUARD_SUPERVISOR, TASKGUARD_LOG_LEVEL, TASKGUARD_INVENTORY=off,
TASKGUARD_INVENTORY_DELAY, TASKGUARD_INVENTORY_INTERVAL, TASKGUARD_INVENTORY_CPU. With a sidecar, the container's
packages and compliance are inventoried in the background (low priority) for the console.

Fail-open (the default): when there is no sidecar, no policy within the
policy wait (5s), or supervision cannot start, the app starts unprotected and a
log line and a high-severity "defender" audit say so and why. Fail-closed
(TASKGUARD_FAIL_CLOSED=1): the app is not started then; the launcher waits for
the policy up to the policy wait (60s) and exits non-zero with the reason.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sink, closer, err := auditSink(auditFile)
			if err != nil {
				return err
			}
			defer closer.Close()
			if sink == nil && policyFile != "" {
				sink = audit.NewJSONLines(os.Stderr) // standalone: audits must go somewhere visible
			}
			st, err := launcher.Run(cmd.Context(), args, os.Environ(), launcher.Options{
				Identity: policy.Identity{
					TaskFamily: os.Getenv("TASKGUARD_TASK"),
					Container:  os.Getenv("TASKGUARD_CONTAINER"),
					Image:      os.Getenv("TASKGUARD_IMAGE"),
				},
				TaskID:     os.Getenv("TASKGUARD_TASK_ID"),
				SocketPath: socketPath,
				PolicyFile: policyFile,
				Audits:     sink,
				FailClosed: failClosed,
				PolicyWait: policyWait,
				Supervisor: supervisor,
				Inventory:  inventorySchedule(inventoryMode, inventoryDelay, inventoryInterval, inventoryCPU, socketPath),
				Files:      [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
				Log:        logger(logLevel),
			})
			if errors.Is(err, launcher.ErrNotFound) {
				return &program.Error{Code: 127, Err: err}
			}
			if err != nil {
				return err
			}
			if st.Signal != 0 {
				closer.Close()
				dieBy(st.Signal)
			}
			if st.ExitCode() != 0 {
				return &program.Error{Code: st.ExitCode()}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVar(&socketPath, "socket", env("TASKGUARD_SOCKET", socket.DefaultPath), "the sidecar's unix socket")
	f.StringVar(&policyFile, "policy", env("TASKGUARD_POLICY_FILE", ""), "a local policy file (standalone: no sidecar)")
	f.StringVar(&auditFile, "audits", env("TASKGUARD_AUDIT_FILE", ""), `write audits as JSON lines to this file ("-" for stdout) instead of the sidecar`)
	f.BoolVar(&failClosed, "fail-closed", env("TASKGUARD_FAIL_CLOSED", "") == "1", "never start the app unprotected: not without a sidecar, not without a policy within --policy-wait, not when supervision cannot start")
	f.DurationVar(&policyWait, "policy-wait", envDuration("TASKGUARD_POLICY_WAIT", 0), "how long to wait for the sidecar's first policy (0: 5s, or 60s with --fail-closed)")
	f.StringVar(&logLevel, "log-level", env("TASKGUARD_LOG_LEVEL", "warn"), "debug, info, warn or error")
	f.StringVar(&supervisor, "supervisor", env("TASKGUARD_SUPERVISOR", "auto"), "auto (seccomp user notification where the kernel offers it, else ptrace), ptrace or usernotif")
	f.StringVar(&inventoryMode, "inventory", env(inventory.EnvOptOut, "on"), "on: inventory this container's packages and compliance for the console (through the sidecar); off: never")
	f.DurationVar(&inventoryDelay, "inventory-delay", envDuration("TASKGUARD_INVENTORY_DELAY", inventory.DefaultDelay), "wait this long after the app starts before the first inventory (0: at once)")
	f.Float64Var(&inventoryCPU, "inventory-cpu", envFloat("TASKGUARD_INVENTORY_CPU", inventory.DefaultCPUBudget), "share of one CPU the inventory walk may use (0 < x <= 1; it also runs at the lowest CPU and I/O priority)")
	f.DurationVar(&inventoryInterval, "inventory-interval", envDuration("TASKGUARD_INVENTORY_INTERVAL", inventory.DefaultInterval), "check the package databases this often; rescan when they changed")
	return cmd
}

// envDuration reads a duration from the environment, or def when unset or malformed.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// envFloat reads a number from the environment; def when unset or not a
// number in (0, 1].
func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && f > 0 && f <= 1 {
		return f
	}
	return def
}

// inventorySchedule is the launcher's inventory configuration, nil when
// turned off. The defender's own volume (the socket's folder) is not scanned.
func inventorySchedule(mode string, delay, interval time.Duration, cpu float64, socketPath string) *inventory.Schedule {
	if !inventory.Enabled(func(string) string { return mode }) {
		return nil
	}
	if delay == 0 {
		delay = -1 // the flag's 0 means at once; the Schedule's means the default
	}
	skip := []string{filepath.Dir(socketPath)}
	if exe, err := os.Executable(); err == nil {
		skip = append(skip, filepath.Dir(exe))
	}
	return &inventory.Schedule{
		Options: inventory.Options{
			Root:      "/",
			SkipDirs:  inventory.SkipDirsFor("/", skip...),
			UID:       os.Geteuid(),
			CPUBudget: cpu,
		},
		Identity: policy.Identity{
			TaskFamily: os.Getenv("TASKGUARD_TASK"),
			Container:  os.Getenv("TASKGUARD_CONTAINER"),
			Image:      os.Getenv("TASKGUARD_IMAGE"),
		},
		TaskID:      os.Getenv("TASKGUARD_TASK_ID"),
		ImageDigest: os.Getenv("TASKGUARD_IMAGE_DIGEST"),
		Delay:       delay,
		Interval:    interval,
	}
}

// dieBy ends this process by sig, as the app ended, so a parent sees the
// same status. As PID 1 the kernel ignores the signal; the caller then exits
// with 128+sig.
func dieBy(sig syscall.Signal) {
	if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		_ = unix.Kill(os.Getpid(), sig)
	}
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) // no core dump of the launcher
	signal.Reset(sig)
	// Set SIG_DFL below Go's runtime, which would otherwise print a stack
	// dump for signals such as SIGQUIT or SIGSEGV instead of just dying.
	var act struct{ handler, flags, restorer, mask uint64 } // SIG_DFL
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	_ = unix.Kill(os.Getpid(), sig)
	time.Sleep(100 * time.Millisecond)
}

func newSidecar() *cobra.Command {
	var o struct {
		socketPath, stateDir, consoleURL, tokenFile, policyFile, auditFile, caFile, logLevel string
		taskFamily, wafAddr                                                                  string
		insecure                                                                             bool
		wait                                                                                 time.Duration
	}
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Sync policy from the console and ship audits (the defender container)",
		Long: `Serves the launchers of this task over a unix socket in the shared volume. With
--console it long-polls the policy and posts audits with the agent token
(TASKGUARD_AGENT_TOKEN or --token-file). A console with a self-signed certificate
is trusted through TASKGUARD_CONSOLE_CA_PEM (its PEM text, which protect writes)
or TASKGUARD_CONSOLE_CA (a file); with --policy it serves a local file and
writes audits as JSON lines (--audits, default stdout).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := sidecar.Options{
				SocketPath: o.socketPath, StateDir: o.stateDir, PolicyWait: o.wait,
				PolicyFile: o.policyFile, Log: logger(o.logLevel),
				TaskFamily: o.taskFamily, WAFAddr: o.wafAddr,
			}
			if o.consoleURL != "" {
				token := os.Getenv("TASKGUARD_AGENT_TOKEN")
				if o.tokenFile != "" {
					b, err := os.ReadFile(o.tokenFile)
					if err != nil {
						return fmt.Errorf("agent token: %w", err)
					}
					token = strings.TrimSpace(string(b))
				}
				if token == "" {
					return errors.New("sidecar: the console needs an agent token: set TASKGUARD_AGENT_TOKEN or --token-file")
				}
				tlsConf, err := sidecar.Trust{CAFile: o.caFile, CAPEM: os.Getenv(sidecar.EnvConsoleCAPEM), Insecure: o.insecure}.TLSConfig()
				if err != nil {
					return fmt.Errorf("sidecar: %w", err)
				}
				opts.Console = &sidecar.Console{BaseURL: o.consoleURL, Token: token, HTTP: &http.Client{
					Timeout:   o.wait + 30*time.Second,
					Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment},
				}}
			} else {
				af := o.auditFile
				if af == "" {
					af = "-"
				}
				sink, closer, err := auditSink(af)
				if err != nil {
					return err
				}
				defer closer.Close()
				opts.Audits = sink
			}
			return sidecar.Run(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.socketPath, "socket", env("TASKGUARD_SOCKET", socket.DefaultPath), "the unix socket launchers connect to")
	f.StringVar(&o.stateDir, "state-dir", env("TASKGUARD_STATE_DIR", "/var/lib/taskguard/state"), "last good policy and audit spool")
	f.StringVar(&o.consoleURL, "console", env("TASKGUARD_CONSOLE", ""), "console base URL, e.g. https://console:8083")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the agent token (else TASKGUARD_AGENT_TOKEN)")
	f.StringVar(&o.taskFamily, "task", env("TASKGUARD_TASK", ""), "the task family, which WAF rules are matched against")
	f.StringVar(&o.wafAddr, "waf-addr", env("TASKGUARD_WAF_ADDR", ""), "address the WAF proxies listen on (default: every address of the task)")
	f.StringVar(&o.caFile, "ca-file", env(sidecar.EnvConsoleCA, ""), "PEM file of the console's certificate or CA, trusted beside the system's roots (also "+sidecar.EnvConsoleCAPEM+": the PEM text itself)")
	f.BoolVar(&o.insecure, "insecure", false, "skip TLS verification of the console (self-signed, tests only)")
	f.DurationVar(&o.wait, "policy-wait", 30*time.Second, "long-poll duration asked of the console")
	f.StringVar(&o.policyFile, "policy", env("TASKGUARD_POLICY_FILE", ""), "serve this policy file (no console)")
	f.StringVar(&o.auditFile, "audits", env("TASKGUARD_AUDIT_FILE", ""), `without a console: write audits as JSON lines here ("-" stdout, the default)`)
	f.StringVar(&o.logLevel, "log-level", env("TASKGUARD_LOG_LEVEL", "info"), "debug, info, warn or error")
	return cmd
}
