package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/taskguard/taskguard/cli"
	"github.com/taskguard/taskguard/cli/pipeline"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/internal/program"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
	"github.com/taskguard/taskguard/scanners/report"
)

// maxAnnotations is how many error and warning annotations one step may
// create before GitHub drops the rest (10 of each).
const maxAnnotations = 10

// Options are the Action's seams for tests.
type Options struct {
	// Stdout and Stderr receive the job's table and messages (default
	// os.Stdout/os.Stderr).
	Stdout, Stderr io.Writer
}

// Run reads the step's inputs, runs the pipeline job (pipeline.RunJob, the
// library `taskguard ci` runs) with typed options, and writes the step's
// outputs, job summary and annotations. Credentials go to the job as
// fields: no environment variable, no command line. It returns the exit
// code (0 passed, 1 blocked with fail-build, 2 could not run) and the error
// to report. It never calls gha.Fatalf.
func Run(ctx context.Context, gha *githubactions.Action, opts Options) (int, error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	in, err := readInputs(gha)
	if err != nil {
		return program.ExitError, err
	}
	// The whole job runs under the timeout input: a registry, DB mirror or
	// console that stops answering fails the step instead of hanging it.
	err = in.timeout.Run(ctx, func(ctx context.Context) error {
		code, err := run(ctx, gha, in, opts)
		if err != nil && code != program.ExitError {
			// A gate's verdict: Run leaves it as it is.
			return &program.Error{Code: code, Err: err}
		}
		return err
	})
	var verdict *program.Error
	if errors.As(err, &verdict) && !errors.Is(err, pipeline.ErrGaveUp) {
		return verdict.Code, verdict.Err
	}
	return program.Code(err), err
}

// run runs the job of the step's inputs; see Run.
func run(ctx context.Context, gha *githubactions.Action, in *inputs, opts Options) (int, error) {
	if err := ghaWrite("secret masks", func() {
		for _, secret := range []string{in.consolePassword, in.consoleToken, in.agentToken} {
			if secret != "" {
				gha.AddMask(secret)
			}
		}
	}); err != nil {
		return program.ExitError, err
	}

	logger := slog.New(slog.NewTextHandler(opts.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, runErr := pipeline.RunJob(ctx, in.job(logger, opts.Stderr))
	if rep == nil {
		return program.ExitError, runErr
	}
	// A failed protect comes after the gate: its reports, summary and
	// outputs are written, then the step fails.
	if err := report.WriteTable(ctx, opts.Stdout, rep, report.TableOptions{}); err != nil {
		return program.ExitError, err
	}
	if rep.ProtectedTask != "" {
		fmt.Fprintf(opts.Stderr, "protected task definition written to %s\n", rep.ProtectedTask)
	}
	// go-githubactions panics when it cannot write a file command or the
	// log; each write below turns that into an error that says which.
	var md bytes.Buffer
	if err := report.WriteMarkdown(ctx, &md, rep, report.MarkdownOptions{}); err != nil {
		return program.ExitError, err
	}
	if err := ghaWrite("job summary (GITHUB_STEP_SUMMARY)", func() { gha.AddStepSummary(md.String()) }); err != nil {
		return program.ExitError, err
	}
	if err := ghaWrite("annotations", func() { annotate(gha, rep, in) }); err != nil {
		return program.ExitError, err
	}
	if err := ghaWrite("outputs (GITHUB_OUTPUT)", func() { setOutputs(gha, rep, in) }); err != nil {
		return program.ExitError, err
	}
	if runErr != nil {
		return program.ExitError, runErr
	}
	if rep.Result == report.ResultBlocked {
		if !in.failBuild {
			err := ghaWrite("warning", func() {
				gha.Warningf("taskguard: the gate blocked, but fail-build is false: %s", strings.Join(rep.BlockReasons, "; "))
			})
			if err != nil {
				return program.ExitError, err
			}
			return program.ExitOK, nil
		}
		return program.ExitBlocked, fmt.Errorf("blocked by the gate: %s", strings.Join(rep.BlockReasons, "; "))
	}
	return program.ExitOK, nil
}

type inputs struct {
	image, input, task, policy, ignoreFile, cutoff   string
	junit, sarif, json, dbRepository, cacheDir       string
	protectedTask, consoleURL, consoleUser           string
	consolePassword, consoleToken, consoleCA         string
	consoleAddr, defenderImage, agentTokenSecret     string
	agentToken, dockerfile, sbom                     string
	include, exclude, skipImages, platforms          []string
	wafPorts                                         []uint16
	onlyFixed, failBuild, extract, offline, insecure bool
	failClosed, layerCache, lockfiles, includeDev    bool
	healthCheck                                      bool
	timeout                                          pipeline.Timeout
}

func readInputs(gha *githubactions.Action) (*inputs, error) {
	in := &inputs{
		image: gha.GetInput("image"), input: gha.GetInput("input"), task: gha.GetInput("task-definition"),
		policy: gha.GetInput("policy"), ignoreFile: gha.GetInput("ignore-file"), cutoff: gha.GetInput("severity-cutoff"),
		junit: gha.GetInput("junit"), sarif: gha.GetInput("sarif"), json: gha.GetInput("json"),
		dbRepository: gha.GetInput("db-repository"), cacheDir: gha.GetInput("cache-dir"),
		protectedTask: gha.GetInput("protected-task-output"), consoleURL: gha.GetInput("console-url"),
		consoleUser: gha.GetInput("console-user"), consolePassword: gha.GetInput("console-password"),
		consoleToken: gha.GetInput("console-token"), consoleCA: gha.GetInput("console-ca"),
		consoleAddr: gha.GetInput("console-addr"), defenderImage: gha.GetInput("defender-image"),
		agentTokenSecret: gha.GetInput("agent-token-secret"), agentToken: gha.GetInput("agent-token"),
		dockerfile: gha.GetInput("dockerfile"), sbom: gha.GetInput("sbom"),
		include: listInput(gha, "include"), exclude: listInput(gha, "exclude"),
		skipImages: listInput(gha, "skip-image"), platforms: listInput(gha, "defender-platforms"),
	}
	var (
		errs []error
		err  error
	)
	boolIn := func(name string, def bool) bool {
		v, err := boolInput(gha, name, def)
		errs = append(errs, err)
		return v
	}
	in.onlyFixed = boolIn("only-fixed", false)
	in.failBuild = boolIn("fail-build", true)
	in.extract = boolIn("extract-entrypoint", false)
	in.offline = boolIn("offline", false)
	in.insecure = boolIn("console-insecure", false)
	in.failClosed = boolIn("fail-closed", false)
	in.layerCache = boolIn("layer-cache", true)
	in.lockfiles = boolIn("lockfiles", false)
	in.includeDev = boolIn("include-dev-deps", false)
	in.healthCheck = boolIn("health-check", false)
	in.wafPorts, err = portsInput(gha, "waf-port")
	errs = append(errs, err)
	in.timeout, err = timeoutInput(gha.GetInput("timeout"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if in.image == "" && in.input == "" && in.task == "" {
		return nil, errors.New(`nothing to check: set the input "image" (a registry reference), "input" (a docker-archive tarball) or "task-definition"`)
	}
	if in.consoleURL != "" && in.consoleToken == "" && (in.consoleUser == "" || in.consolePassword == "") {
		return nil, errors.New(`input "console-url" needs "console-token", or "console-user" and "console-password"`)
	}
	return in, nil
}

// job turns the inputs into the pipeline job's typed options.
func (in *inputs) job(logger *slog.Logger, messages io.Writer) pipeline.JobOptions {
	run := pipeline.Options{
		TaskPath: in.task, SeverityCutoff: in.cutoff, OnlyFixed: in.onlyFixed,
		ToolVersion: cli.Version(), Logger: logger, IncludeDev: in.includeDev,
	}
	if in.lockfiles {
		run.Analyzers = append(analyzer.All(), analyzer.Lockfiles()...)
	}
	switch {
	case in.input != "":
		run.Image, run.ImageOptions = in.input, image.Options{Kind: image.KindTarball}
	case in.image != "":
		run.Image = in.image
	}
	if run.Image != "" && in.layerCache {
		// Layers analysed by an earlier step or run (a self-hosted runner,
		// the SBOM after the scan) are not read again.
		dir, err := layercache.DefaultDir()
		if err == nil {
			run.ImageOptions.Cache, err = layercache.Open(dir, layercache.Options{})
		}
		if err != nil {
			logger.Warn("scanning without the layer cache", "err", err)
		}
	}
	if in.task != "" {
		run.ProtectOutput = in.protectedTask
		if run.ProtectOutput == "" {
			run.ProtectOutput = "protected-task-definition.json"
		}
		run.Protect = fargate.Options{
			ConsoleAddr:         in.consoleAddr,
			DefenderImage:       in.defenderImage,
			AgentTokenSecretARN: in.agentTokenSecret,
			ExtractEntrypoint:   in.extract,
			Include:             in.include,
			Exclude:             in.exclude,
			SkipImages:          in.skipImages,
			FailClosed:          in.failClosed,
			DefenderPlatforms:   in.platforms,
			WAFPorts:            in.wafPorts,
			DefenderHealthCheck: in.healthCheck,
		}
		if in.consoleURL == "" {
			run.Protect.AgentToken = in.agentToken
		}
	}
	job := pipeline.JobOptions{
		Run:        run,
		PolicyFile: in.policy,
		IgnoreFile: in.ignoreFile,
		DB:         pipeline.DBOptions{Dir: in.cacheDir, Repository: in.dbRepository, Offline: in.offline},
		Reports:    pipeline.ReportFiles{JUnit: in.junit, SARIF: in.sarif, JSON: in.json, SBOM: in.sbom, Dockerfile: in.dockerfile},
		Messages:   messages,
		Names:      inputName,
	}
	if in.consoleURL == "" {
		job.DefenderCAFile = in.consoleCA
	} else {
		job.Console = &pipeline.ConsoleOptions{
			URL: in.consoleURL, Token: in.consoleToken, User: in.consoleUser, Password: in.consolePassword,
			CAFile: in.consoleCA, Insecure: in.insecure,
		}
	}
	return job
}

// annotate adds error annotations for blocking findings and warnings for
// alerts, pointing at the task definition or the Dockerfile when known.
func annotate(gha *githubactions.Action, rep *report.Report, in *inputs) {
	var errs, warns int
	emit := func(action, file, title, msg string) {
		fields := map[string]string{"title": title}
		if file != "" {
			fields["file"] = file
		}
		switch action {
		case report.ActionBlock:
			if errs < maxAnnotations {
				gha.WithFieldsMap(fields).Errorf("%s", msg)
			}
			errs++
		case report.ActionAlert:
			if warns < maxAnnotations {
				gha.WithFieldsMap(fields).Warningf("%s", msg)
			}
			warns++
		}
	}
	for _, v := range rep.Vulnerabilities {
		emit(v.Verdict.Action, in.dockerfile, fmt.Sprintf("%s %s in %s", v.Severity, v.VulnerabilityID, v.PkgName),
			fmt.Sprintf("%s %s %s: fixed in %s (%s)", v.VulnerabilityID, v.PkgName, v.InstalledVersion, orDash(v.FixedVersion), v.Verdict.Reason))
	}
	for _, c := range rep.Compliance {
		file := in.dockerfile
		if c.Family == "task" {
			file = in.task
		}
		emit(c.Verdict.Action, file, fmt.Sprintf("%s %s", c.CheckID, c.Title), fmt.Sprintf("%s: %s. %s", c.Target, c.Message, c.Remediation))
	}
	if errs > maxAnnotations || warns > maxAnnotations {
		gha.Noticef("taskguard: %d blocking and %d alerting findings; the first %d of each are annotated, all are in the job summary and reports", errs, warns, maxAnnotations)
	}
}

func setOutputs(gha *githubactions.Action, rep *report.Report, in *inputs) {
	v := rep.Summary.Vulnerabilities
	for name, value := range map[string]string{
		"result":   rep.Result,
		"critical": strconv.Itoa(v.Critical), "high": strconv.Itoa(v.High), "medium": strconv.Itoa(v.Medium),
		"low": strconv.Itoa(v.Low), "unknown": strconv.Itoa(v.Unknown),
		"compliance": strconv.Itoa(rep.Summary.Compliance.Total),
		"blocked":    strconv.Itoa(rep.Summary.Blocked), "alerted": strconv.Itoa(rep.Summary.Alerted),
		"accepted":          strconv.Itoa(rep.Summary.Accepted),
		"critical-accepted": strconv.Itoa(rep.Summary.VulnerabilitiesAccepted.Critical),
		"critical-blocked":  strconv.Itoa(rep.Summary.VulnerabilitiesBlocked.Critical),
		"junit":             in.junit, "sarif": in.sarif, "json": in.json, "sbom": sbomOutput(in),
		"protected-task-definition": rep.ProtectedTask,
	} {
		gha.SetOutput(name, value)
	}
}

// ghaWrite runs f, which writes through go-githubactions, and turns the
// library's panic on a failed write (an output or summary file that cannot
// be opened or written, a closed log) into an error naming what failed.
func ghaWrite(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write the step's %s: %v", what, r)
		}
	}()
	f()
	return nil
}

// ReportError reports err as the step's error annotation; if even that
// cannot be written, it says so on stderr.
func ReportError(gha *githubactions.Action, err error) {
	if werr := ghaWrite("error annotation", func() { gha.Errorf("taskguard: %v", err) }); werr != nil {
		fmt.Fprintf(os.Stderr, "taskguard: %v (%v)\n", err, werr)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inputName is the step input an input of the job comes from.
func inputName(input string) string {
	if input == "console" {
		input = "console-url"
	}
	return fmt.Sprintf("input %q", input)
}

// listInput reads a list input: names separated by commas or new lines
// (a YAML block scalar), blanks dropped.
func listInput(gha *githubactions.Action, name string) []string {
	var list []string
	for _, v := range strings.FieldsFunc(gha.GetInput(name), func(r rune) bool { return r == ',' || r == '\n' }) {
		if v = strings.TrimSpace(v); v != "" {
			list = append(list, v)
		}
	}
	return list
}

func boolInput(gha *githubactions.Action, name string, def bool) (bool, error) {
	v := gha.GetInput(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("input %q: %q is not true or false", name, v)
	}
	return b, nil
}

// portsInput reads a list input of TCP ports (comma- or newline-separated).
func portsInput(gha *githubactions.Action, name string) ([]uint16, error) {
	var ports []uint16
	for _, v := range listInput(gha, name) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("input %q: %q is not a port between 1 and 65535", name, v)
		}
		ports = append(ports, uint16(n))
	}
	return ports, nil
}

// timeoutInput reads the timeout input: a Go duration (30m, 1h30m), 0 for
// no limit, empty for pipeline.DefaultTimeout.
func timeoutInput(v string) (pipeline.Timeout, error) {
	t := pipeline.Timeout{After: pipeline.DefaultTimeout, Setting: `input "timeout"`, Example: "timeout: %s"}
	if v = strings.TrimSpace(v); v == "" {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return t, fmt.Errorf(`input "timeout": %q is not a duration such as 10m or 1h30m (0: no limit)`, v)
	}
	t.After = d
	return t, t.Check()
}

// sbomOutput is the SBOM file the job writes: the sbom input when an image
// was scanned (a write that failed fails the step).
func sbomOutput(in *inputs) string {
	if in.image == "" && in.input == "" {
		return ""
	}
	return in.sbom
}
