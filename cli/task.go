package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/console/tlscert"
)

func newTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Work with ECS Fargate task definitions",
	}
	cmd.AddCommand(withTimeout(newTaskProtectCommand()), newTaskRunLocalCommand())
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
	consoleCA         string
	include           []string
	exclude           []string
	skipImages        []string
	failClosed        bool
	defenderPlatforms []string
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
ARN with --agent-token-secret (recommended: the value never appears in the task).

--console-addr is host, host:port or a URL: a bare address means https://; write
http://host:port for a console run with --insecure-http. A console serving its
self-signed certificate (the default) needs --console-ca with that certificate
(DATA_DIR/tls/console.crt): it goes into the defender as TASKGUARD_CONSOLE_CA_PEM.

Infrastructure containers are left as they are: a FireLens log router, the
proxyConfiguration container (App Mesh / Service Connect Envoy) and images
matching --skip-image; --include and --exclude decide by name. Standard error
says which containers were protected and why the others were not.`,
		Example: `  taskguard task protect fargate.json -o protected.json
  taskguard task protect fargate.json --console-addr console.example.com:8083 \
      --console-ca taskguard-data/tls/console.crt \
      --agent-token-secret arn:aws:secretsmanager:us-east-1:123456789012:secret:taskguard/agent
  taskguard task protect fargate.json --exclude migrations --fail-closed \
      --defender-platforms linux/amd64,linux/arm64`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTaskProtect(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "", "write the protected task definition to this file (default: standard output)")
	fl.StringVar(&f.consoleAddr, "console-addr", "", "console the defender reports to: host, host:port (https) or http(s)://host:port (the API's consoleaddr)")
	fl.StringVar(&f.consoleCA, "console-ca", "", "PEM file of the console's certificate (or its CA) for the defender to trust (TASKGUARD_CONSOLE_CA_PEM); needed unless the console's certificate is publicly trusted")
	fl.StringSliceVar(&f.include, "include", nil, "protect these containers even if they look like infrastructure (names, repeatable)")
	fl.StringSliceVar(&f.exclude, "exclude", nil, "leave these containers as they are (names, repeatable)")
	fl.StringSliceVar(&f.skipImages, "skip-image", nil, "leave containers whose image matches this glob as they are (repeatable), e.g. 'public.ecr.aws/aws-observability/*'")
	fl.BoolVar(&f.failClosed, "fail-closed", false, "protected apps never start without supervision and policy (TASKGUARD_FAIL_CLOSED=1); default: fail-open, logged and audited")
	fl.StringSliceVar(&f.defenderPlatforms, "defender-platforms", []string{fargate.PlatformAMD64}, "platforms the defender image carries (linux/amd64, linux/arm64); an ARM64 task needs linux/arm64")
	fl.StringVar(&f.defenderImage, "defender-image", "", "defender image (default "+fargate.DefaultDefenderImage+")")
	fl.BoolVar(&f.extractEntrypoint, "extract-entrypoint", false, "read ENTRYPOINT/CMD from the image when a container has no entryPoint")
	fl.StringVar(&f.agentTokenSecret, "agent-token-secret", "", "ARN of a Secrets Manager secret or SSM parameter holding the agent credential")
	fl.Var(&portsValue{&f.wafPorts}, "waf-port", "external port the defender's WAF listens on (repeatable)")
	fl.BoolVar(&f.healthCheck, "health-check", false, "give the defender a health check; app containers wait for HEALTHY")
	fl.BoolVar(&f.yaml, "yaml", false, "the input and output are YAML (default: by the file's extension)")
	return cmd
}

func runTaskProtect(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, path string, f protectFlags) error {
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
		Include:             f.include,
		Exclude:             f.exclude,
		SkipImages:          f.skipImages,
		FailClosed:          f.failClosed,
		DefenderPlatforms:   f.defenderPlatforms,
	}
	for _, p := range f.defenderPlatforms {
		if p != fargate.PlatformAMD64 && p != fargate.PlatformARM64 {
			return fmt.Errorf("--defender-platforms: %q is not %s or %s", p, fargate.PlatformAMD64, fargate.PlatformARM64)
		}
	}
	if f.agentTokenSecret == "" {
		opts.AgentToken = os.Getenv(fargate.EnvAgentToken)
	}
	var warnings, notes []string
	if f.consoleCA != "" {
		if f.consoleAddr == "" {
			return errors.New("--console-ca is for the console the defender reports to: give --console-addr too")
		}
		certs, pemText, err := tlscert.ReadPEMFile(f.consoleCA)
		if err != nil {
			return fmt.Errorf("--console-ca: %w", err)
		}
		u, err := fargate.ConsoleURL(f.consoleAddr, false)
		if err != nil {
			return fmt.Errorf("--console-addr: %w", err)
		}
		if parsed, _ := url.Parse(u); parsed.Scheme == "https" {
			if err := tlscert.CheckCovers(certs[0], parsed.Hostname()); err != nil {
				warnings = append(warnings, err.Error())
			}
		} else {
			warnings = append(warnings, "--console-ca is given but --console-addr "+u+" is plain HTTP: the certificate is not used")
		}
		opts.ConsoleCAPEM = pemText
	} else if f.consoleAddr != "" {
		if u, err := fargate.ConsoleURL(f.consoleAddr, false); err == nil && strings.HasPrefix(u, "https://") {
			notes = append(notes, "no --console-ca: the defender trusts "+u+" only if its certificate is publicly trusted; for the console's self-signed certificate give --console-ca DATA_DIR/tls/console.crt")
		}
	}
	protect := fargate.ProtectJSONReport
	if f.yaml || isYAML(path) {
		protect = fargate.ProtectYAMLReport
	}
	out, rep, err := protect(ctx, in, opts)
	if err != nil {
		return fmt.Errorf("protect %s: %w", path, err)
	}
	fmt.Fprint(stderr, rep.String())
	for _, n := range notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
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
