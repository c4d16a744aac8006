package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/taskguard/taskguard/console/fargate"
)

func newTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Work with ECS Fargate task definitions",
	}
	cmd.AddCommand(newTaskProtectCommand(), newTaskRunLocalCommand())
	return cmd
}

type protectFlags struct {
	output            string
	consoleAddr       string
	defenderImage     string
	extractEntrypoint bool
	agentTokenSecret  string
	wafPorts          []uint16
	healthCheck       bool
	yaml              bool
}

func newTaskProtectCommand() *cobra.Command {
	var f protectFlags
	cmd := &cobra.Command{
		Use:   "protect TASK.json",
		Short: "Embed the taskguard defender into a task definition (offline)",
		Long: `Protect turns an ECS task definition into a protected one: every app container
starts under the defender's launcher (/var/lib/taskguard/defender entrypoint -- ARGV)
and a taskguard-defender sidecar is appended. The input may be RegisterTaskDefinition
JSON or DescribeTaskDefinition output; "-" reads standard input. The result
registers as is with: aws ecs register-task-definition --cli-input-json file://OUT

The agent credential the defender uses to reach the console is read from the
TASKGUARD_AGENT_TOKEN environment variable, or passed as a Secrets Manager / SSM
ARN with --agent-token-secret (recommended: the value never appears in the task).`,
		Example: `  taskguard task protect fargate.json -o protected.json
  taskguard task protect fargate.json --console-addr console.example.com:8083 \
      --agent-token-secret arn:aws:secretsmanager:us-east-1:123456789012:secret:taskguard/agent`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTaskProtect(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "", "write the protected task definition to this file (default: standard output)")
	fl.StringVar(&f.consoleAddr, "console-addr", "", "console host[:port] the defender reports to (the API's consoleaddr)")
	fl.StringVar(&f.defenderImage, "defender-image", "", "defender image (default "+fargate.DefaultDefenderImage+")")
	fl.BoolVar(&f.extractEntrypoint, "extract-entrypoint", false, "read ENTRYPOINT/CMD from the image when a container has no entryPoint")
	fl.StringVar(&f.agentTokenSecret, "agent-token-secret", "", "ARN of a Secrets Manager secret or SSM parameter holding the agent credential")
	fl.Var(&portsValue{&f.wafPorts}, "waf-port", "external port the defender's WAF listens on (repeatable)")
	fl.BoolVar(&f.healthCheck, "health-check", false, "give the defender a health check; app containers wait for HEALTHY")
	fl.BoolVar(&f.yaml, "yaml", false, "the input and output are YAML (default: by the file's extension)")
	return cmd
}

func runTaskProtect(ctx context.Context, stdin io.Reader, stdout io.Writer, path string, f protectFlags) error {
	in, err := readInput(stdin, path)
	if err != nil {
		return err
	}
	opts := fargate.Options{
		ConsoleAddr:         f.consoleAddr,
		DefenderImage:       f.defenderImage,
		AgentTokenSecretARN: f.agentTokenSecret,
		ExtractEntrypoint:   f.extractEntrypoint,
		WAFPorts:            f.wafPorts,
		DefenderHealthCheck: f.healthCheck,
	}
	if f.agentTokenSecret == "" {
		opts.AgentToken = os.Getenv(fargate.EnvAgentToken)
	}
	protect := fargate.ProtectJSON
	if f.yaml || isYAML(path) {
		protect = fargate.ProtectYAML
	}
	out, err := protect(ctx, in, opts)
	if err != nil {
		return fmt.Errorf("protect %s: %w", path, err)
	}
	if f.output == "" {
		_, err = stdout.Write(out)
		return err
	}
	return writeFileAtomic(f.output, out)
}

func isYAML(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// maxInputBytes bounds what the CLI reads as a task definition or policy.
const maxInputBytes = 8 << 20

// readInput reads a file, or standard input for "-", refusing absurd sizes.
func readInput(stdin io.Reader, path string) ([]byte, error) {
	r := stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		r = file
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxInputBytes {
		return nil, fmt.Errorf("read %s: larger than %d MiB; is this a task definition?", path, maxInputBytes>>20)
	}
	return b, nil
}

// writeFileAtomic writes through a temporary file and a rename, so a failure
// never leaves a half-written output behind.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
