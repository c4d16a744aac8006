package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/cli/pipeline"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/report"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

type ciFlags struct {
	db           dbFlags
	image        string
	input        string
	task         string
	policyFile   string
	ignoreFile   string
	skipDBUpdate bool
	junit        string
	sarif        string
	json         string
	markdown     string
	format       string
	protectOut   string
	protect      protectFlags
	dockerfile   string
	console      consoleFlags
	cutoff       string
	onlyFixed    bool
	noPublish    bool
	sbom         string
	lockfiles    bool
	includeDev   bool
}

func newCICommand() *cobra.Command {
	var f ciFlags
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Scan, gate, report and protect: the CI pipeline job",
		Long: `ci is the pipeline job that the GitHub Action and the Jenkins stage run:

  1. scan the image for vulnerabilities and image compliance issues,
  2. check the task definition (Fargate compliance checks),
  3. apply the gate: the first CI rule of the policy that matches the image,
     with the repository's ignore file (.taskguardignore),
  4. write every requested report (JUnit, SARIF, JSON, Markdown; a table on stdout),
  5. when the gate passes, protect the task definition (--protected-task-output):
     through the console's API with --console (it mints the defender's
     credential), else offline.

Rules come from --policy FILE, else from the console's CI rules with --console
(which also receives the results, POST /api/v1/scans, role ci), else the embedded
default policy (block fixed critical vulnerabilities, privileged containers and
plain-text secrets; alert on the rest). The command says which it used.

Exit codes: 0 passed, 1 blocked by the gate (the reasons are printed), 2 could not run.`,
		Example: `  taskguard ci --image registry.example.com/shop/web:1.4 --task task.json \
      --junit taskguard.junit.xml --sarif taskguard.sarif --protected-task-output tg_fargate.json
  taskguard ci --input image.tar --policy taskguard-policy.yaml --markdown "$GITHUB_STEP_SUMMARY"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCI(cmd, &f)
		},
	}
	f.db.register(cmd)
	f.db.registerLayerCache(cmd)
	f.console.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.cutoff, "severity-cutoff", "", "block vulnerabilities at or above this severity, whatever the policy's block threshold (LOW, MEDIUM, HIGH, CRITICAL)")
	fl.BoolVar(&f.onlyFixed, "only-fixed", false, "count only vulnerabilities that have a fixed version")
	fl.BoolVar(&f.noPublish, "no-publish", false, "with --console: do not publish the results to the console")
	fl.StringVar(&f.image, "image", "", "image to scan: a registry reference, or a tarball, OCI layout or rootfs path")
	fl.StringVar(&f.input, "input", "", "docker-archive tarball to scan (instead of --image)")
	fl.StringVar(&f.task, "task", "", "ECS task definition JSON to check and protect")
	fl.StringVar(&f.policyFile, "policy", "", "local policy file (YAML or JSON); default: the embedded default policy")
	fl.StringVar(&f.ignoreFile, "ignore-file", "", "ignore file (default "+policy.IgnoreFileName+" when it exists)")
	fl.BoolVar(&f.skipDBUpdate, "skip-db-update", false, "use the cached vulnerability DB without checking for a new one")
	fl.StringVar(&f.junit, "junit", "", "write a JUnit XML report to this file")
	fl.StringVar(&f.sarif, "sarif", "", "write a SARIF 2.1.0 report to this file")
	fl.StringVar(&f.json, "json", "", "write the JSON report to this file")
	fl.StringVar(&f.sbom, "sbom", "", "write an SBOM of the image to this file: SPDX 2.3 JSON for *.spdx.json, else CycloneDX 1.6 JSON")
	fl.BoolVar(&f.includeDev, "include-dev-deps", false, "with --lockfiles, also report the packages lock files name for development only (as image scan --include-dev-deps)")
	fl.BoolVar(&f.lockfiles, "lockfiles", false, "also read application lock files and manifests (as image scan --lockfiles), not only installed packages")
	fl.StringVar(&f.markdown, "markdown", "", "write a Markdown summary to this file (appends: works with $GITHUB_STEP_SUMMARY)")
	fl.StringVar(&f.dockerfile, "dockerfile", "", "the repository's Dockerfile, which SARIF image findings point at (default Dockerfile)")
	fl.StringVarP(&f.format, "format", "f", "table", "what to print on stdout: table, json or none")
	fl.StringVar(&f.protectOut, "protected-task-output", "", "write the protected task definition here when the gate passes")
	fl.StringVar(&f.protect.consoleAddr, "console-addr", "", "console host[:port] the defender reports to")
	fl.StringVar(&f.protect.defenderImage, "defender-image", "", "defender image (default "+fargate.DefaultDefenderImage+")")
	fl.BoolVar(&f.protect.extractEntrypoint, "extract-entrypoint", false, "read ENTRYPOINT/CMD from the image when a container has no entryPoint")
	fl.StringVar(&f.protect.agentTokenSecret, "agent-token-secret", "", "ARN of the secret holding the agent credential")
	fl.StringSliceVar(&f.protect.include, "include", nil, "protect these containers even if they look like infrastructure (names, repeatable)")
	fl.StringSliceVar(&f.protect.exclude, "exclude", nil, "leave these containers as they are (names, repeatable)")
	fl.StringSliceVar(&f.protect.skipImages, "skip-image", nil, "leave containers whose image matches this glob as they are (repeatable)")
	fl.BoolVar(&f.protect.failClosed, "fail-closed", false, "protected apps never start without supervision and policy (TASKGUARD_FAIL_CLOSED=1)")
	fl.StringSliceVar(&f.protect.defenderPlatforms, "defender-platforms", nil, "platforms the defender image carries (linux/amd64, linux/arm64; default linux/amd64)")
	fl.Var(&portsValue{&f.protect.wafPorts}, "waf-port", "offline: external port the defender's WAF listens on, mapped in the task (repeatable; with --console its WAF rules decide)")
	fl.BoolVar(&f.protect.healthCheck, "health-check", false, "offline: give the defender a health check; app containers wait for HEALTHY")
	return cmd
}

func runCI(cmd *cobra.Command, f *ciFlags) error {
	ctx := cmd.Context()
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if f.image != "" && f.input != "" {
		return errors.New("give either --image or --input, not both")
	}
	if f.format != "table" && f.format != "json" && f.format != "none" {
		return fmt.Errorf("--format %q: want table, json or none", f.format)
	}
	run := pipeline.Options{TaskPath: f.task, ToolVersion: Version(), Logger: logger, SeverityCutoff: f.cutoff, OnlyFixed: f.onlyFixed}
	if f.input != "" {
		run.Image, run.ImageOptions = f.input, image.Options{Kind: image.KindTarball}
	} else if f.image != "" {
		run.Image = f.image
	}
	if f.lockfiles {
		run.Analyzers = append(analyzer.All(), analyzer.Lockfiles()...)
	}
	run.IncludeDev = f.includeDev
	run.ImageOptions.Insecure = f.db.insecure
	if run.Image != "" {
		run.ImageOptions.Cache = f.db.layerCache(cmd)
	}
	client, err := f.console.client()
	if err != nil {
		return err
	}
	if f.task != "" && f.protectOut != "" {
		run.ProtectOutput = f.protectOut
		run.Protect = fargate.Options{
			ConsoleAddr:         f.protect.consoleAddr,
			DefenderImage:       f.protect.defenderImage,
			AgentTokenSecretARN: f.protect.agentTokenSecret,
			ExtractEntrypoint:   f.protect.extractEntrypoint,
			Include:             f.protect.include,
			Exclude:             f.protect.exclude,
			SkipImages:          f.protect.skipImages,
			FailClosed:          f.protect.failClosed,
			DefenderPlatforms:   f.protect.defenderPlatforms,
			WAFPorts:            f.protect.wafPorts,
			DefenderHealthCheck: f.protect.healthCheck,
		}
		if client == nil && f.protect.agentTokenSecret == "" {
			run.Protect.AgentToken = os.Getenv(fargate.EnvAgentToken)
		}
	}
	job := pipeline.JobOptions{
		Run:        run,
		PolicyFile: f.policyFile,
		IgnoreFile: f.ignoreFile,
		OpenDB: func(ctx context.Context) (*vulndb.DB, error) {
			return openDB(ctx, cmd, &f.db, f.skipDBUpdate)
		},
		Reports: pipeline.ReportFiles{
			JUnit: f.junit, SARIF: f.sarif, JSON: f.json, Markdown: f.markdown,
			SBOM: f.sbom, Dockerfile: f.dockerfile,
		},
		Messages: cmd.ErrOrStderr(),
		Names:    func(input string) string { return "--" + input },
	}
	if client != nil {
		job.Console = &pipeline.ConsoleOptions{Client: client, URL: f.console.url, NoPublish: f.noPublish}
	} else {
		job.DefenderCAFile = f.console.caFile
	}
	rep, runErr := pipeline.RunJob(ctx, job)
	if rep == nil {
		return runErr
	}
	if err := writeStdout(ctx, cmd, f.format, rep); err != nil {
		return err
	}
	if rep.ProtectedTask != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "protected task definition written to %s\n", rep.ProtectedTask)
	}
	if runErr != nil {
		// Something after the gate failed (protect, SBOM, publication):
		// exit 2, the reports written.
		return runErr
	}
	if rep.Result == report.ResultBlocked {
		return program.Blocked(fmt.Errorf("blocked by the gate: %s", strings.Join(rep.BlockReasons, "; ")))
	}
	return nil
}

// writeStdout prints the report as --format asks.
func writeStdout(ctx context.Context, cmd *cobra.Command, format string, rep *report.Report) error {
	out := cmd.OutOrStdout()
	switch format {
	case "json":
		return report.WriteJSON(ctx, out, rep)
	case "table":
		return report.WriteTable(ctx, out, rep, report.TableOptions{Color: isTerminal(out)})
	}
	return nil
}
