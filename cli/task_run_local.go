package cli

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/cli/localrun"
	"github.com/taskguard/taskguard/internal/program"
)

type runLocalFlags struct {
	console     string
	archives    []string
	dns         []string
	network     string
	root        string
	runRoot     string
	keep        bool
	insecure    bool
	stopTimeout time.Duration
	verbose     bool
}

func newTaskRunLocalCommand() *cobra.Command {
	var f runLocalFlags
	cmd := &cobra.Command{
		Use:   "run-local TASK.json",
		Short: "Run a (protected) task definition on this machine with Podman",
		Long: `Run an ECS Fargate task definition locally with Podman, the way Fargate would:
one pod per task (a shared network namespace, like awsvpc), each container with its
image, entryPoint + command, environment, volumesFrom, dependsOn order and conditions
(START, COMPLETE, SUCCESS, HEALTHY), linuxParameters capabilities, and portMappings
published on 127.0.0.1. When an essential container exits the task stops. The pod,
its containers, their anonymous volumes and the network namespace are removed at the
end and on Ctrl-C (--keep leaves them for inspection).

Images come from --image-archive NAME=FILE.tar (podman load, then tagged NAME; FILE.tar
alone keeps the archive's names), local storage, or a registry. ECS secrets are taken
from the environment variable of the same name (a local run cannot read Secrets
Manager or SSM); a missing one is refused.

The pod uses slirp4netns with allow_host_loopback=true: 10.0.2.2 inside the pod is the
host's 127.0.0.1. TASKGUARD_CONSOLE (or --console) on loopback is rewritten to it.
Podman runs with a generated containers.conf: runc, cgroupfs, and nofile/nproc
ulimits within this process's hard limits.

Exit codes: 0 the essential container that stopped the task exited 0, 1 it exited
non-zero (reported), 2 the task could not run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			task, err := localrun.ParseTask(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			archives := map[string]string{}
			for _, a := range f.archives {
				name, file, ok := strings.Cut(a, "=")
				if !ok {
					name, file = "", a
				}
				if file == "" {
					return fmt.Errorf("--image-archive %q: want NAME=FILE.tar or FILE.tar", a)
				}
				archives[name] = file
			}
			level := slog.LevelWarn
			if f.verbose {
				level = slog.LevelInfo
			}
			res, err := localrun.Run(cmd.Context(), task, localrun.Options{
				ConsoleURL: f.console, Archives: archives, DNS: f.dns, Network: f.network,
				Root: f.root, RunRoot: f.runRoot, Keep: f.keep, InsecureRegistry: f.insecure, StopTimeout: f.stopTimeout,
				Output: cmd.OutOrStdout(),
				Log:    slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})),
			})
			if err != nil && cmd.Context().Err() != nil && res != nil {
				what := "removed"
				if f.keep {
					what = "kept: " + res.Pod
				}
				return fmt.Errorf("run-local: interrupted; task %s stopped, pod %s", task.Family, what)
			}
			if err != nil {
				return fmt.Errorf("run-local: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "task %s stopped: essential container %q exited with code %d\n", task.Family, res.StoppedBy, res.ExitCode)
			if res.ExitCode != 0 {
				return &program.Error{Code: program.ExitBlocked, Err: fmt.Errorf("essential container %q exited with code %d", res.StoppedBy, res.ExitCode)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.console, "console", "", "console URL for the defender (overrides TASKGUARD_CONSOLE; loopback is reachable from the pod)")
	fl.StringArrayVar(&f.archives, "image-archive", nil, "load an image archive first: NAME=FILE.tar or FILE.tar (repeatable)")
	fl.StringArrayVar(&f.dns, "dns", nil, "DNS server for the pod (repeatable; 10.0.2.2 is the host's loopback)")
	fl.StringVar(&f.network, "network", localrun.DefaultNetwork, "podman network of the pod")
	fl.StringVar(&f.root, "podman-root", "", "podman storage root (default: podman's)")
	fl.StringVar(&f.runRoot, "podman-runroot", "", "podman run root (default: podman's)")
	fl.BoolVar(&f.insecure, "insecure-registry", false, "pull images over plain HTTP or unverified TLS (a registry on loopback)")
	fl.BoolVar(&f.keep, "keep", false, "leave the pod and containers for inspection")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 5*time.Second, "time between SIGTERM and SIGKILL when the task stops")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log progress (pod, starts, dependencies, teardown)")
	return cmd
}
