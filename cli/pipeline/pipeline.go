package pipeline

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/customcheck"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/compliance"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/report"
	"github.com/taskguard/taskguard/scanners/scan"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

//go:embed default-policy.yaml
var defaultPolicyYAML []byte

// DefaultPolicy returns the embedded default CI policy.
func DefaultPolicy() (*policy.Policy, error) {
	p, err := policy.ParsePolicy(defaultPolicyYAML)
	if err != nil {
		return nil, fmt.Errorf("embedded default policy: %w", err)
	}
	return p, nil
}

// Options describe one CI run.
type Options struct {
	// Image is what to scan: a registry reference or a path (see ImageOptions.Kind).
	// Empty: no image is scanned (only the task definition is checked).
	Image        string
	ImageOptions image.Options
	// DB is the vulnerability DB; required when Image is set.
	DB *vulndb.DB
	// Analyzers find the image's packages; nil means analyzer.All() (add
	// analyzer.Lockfiles() for application lock files and manifests).
	Analyzers []analyzer.Analyzer
	// IncludeDev keeps the packages lock files name for development only.
	IncludeDev bool
	// TaskPath is a task definition to check and protect; empty: none.
	TaskPath string

	// Policy holds the gate's rules; nil means DefaultPolicy().
	Policy *policy.Policy
	// PolicySource says where Policy came from (for the report).
	PolicySource report.PolicySource
	// Ignore are accepted findings from the repository's ignore file.
	Ignore []policy.Exception
	// IgnoreFile is the ignore file's path, for the reports (where a
	// finding was accepted).
	IgnoreFile string
	// SeverityCutoff, when set, replaces the rule's vulnerability block
	// threshold (the Action's severity-cutoff input).
	SeverityCutoff string
	// OnlyFixed, when true, counts only vulnerabilities that have a fix.
	OnlyFixed bool

	// ProtectOutput, when set with TaskPath, is where the protected task
	// definition is written — only when the gate passes.
	ProtectOutput string
	Protect       fargate.Options
	// Console, when set, protects through the console's API instead of
	// offline, so that the console mints the defender's agent credential.
	Console *api.Client

	ToolVersion string
	Logger      *slog.Logger
	// Now is the time the gate judges at; nil means time.Now.
	Now func() time.Time
}

// ErrProtect marks a failed protect: the gate ran and its report is
// complete, but the protected task definition could not be made or written.
var ErrProtect = errors.New("protect failed")

// Run runs the CI job and returns its report. An error means the job could
// not run (exit code 2); a blocked gate is a report with Result "blocked".
//
// When only the protect step fails, Run returns both the report (whose
// Warnings say that the task was not protected, and why) and an error that
// wraps ErrProtect: the caller writes the reports, then fails with exit code 2.
func Run(ctx context.Context, opts Options) (*report.Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Image == "" && opts.TaskPath == "" {
		return nil, fmt.Errorf("nothing to check: give an image (--image, --input, --layout, --rootfs) and/or a task definition (--task)")
	}
	def, err := DefaultPolicy()
	if err != nil {
		return nil, err
	}
	pol := opts.Policy
	src := opts.PolicySource
	if pol == nil {
		pol = def
		src = report.PolicySource{Source: "default"}
	}
	rule := pol.CIFor(opts.Image)
	if rule == nil {
		rule = def.CIFor("")
		src.Rule = "default (no rule of the policy matches the image)"
	} else {
		src.Rule = rule.Name
	}
	if opts.SeverityCutoff != "" || opts.OnlyFixed {
		r := *rule
		if opts.SeverityCutoff != "" {
			if !policy.ValidSeverity(opts.SeverityCutoff) {
				return nil, fmt.Errorf("severity cutoff %q: use LOW, MEDIUM, HIGH or CRITICAL", opts.SeverityCutoff)
			}
			r.Vulnerabilities.BlockThreshold = strings.ToUpper(opts.SeverityCutoff)
		}
		r.Vulnerabilities.OnlyFixed = r.Vulnerabilities.OnlyFixed || opts.OnlyFixed
		rule = &r
	}
	at := now().UTC()
	r := &report.Report{
		SchemaVersion: report.SchemaVersion,
		Tool:          scan.Tool{Name: "taskguard", Version: opts.ToolVersion},
		CreatedAt:     at,
		Policy:        src,
	}

	if opts.Image != "" {
		if err := scanImage(ctx, opts, logger, rule, at, r); err != nil {
			return nil, err
		}
		if err := ErrIncomplete(ctx, "scan "+opts.Image); err != nil {
			return nil, err
		}
	}
	var taskJSON []byte
	if opts.TaskPath != "" {
		var err error
		if taskJSON, err = checkTask(opts, rule, at, r); err != nil {
			return nil, err
		}
	}
	for _, ex := range policy.ExpiredExceptions(slices.Concat(rule.Vulnerabilities.Exceptions, rule.Compliance.Exceptions, opts.Ignore), at) {
		r.ExpiredExceptions = append(r.ExpiredExceptions, report.Exception{ID: ex.ID, Package: ex.Package, Reason: ex.Reason, Expires: ex.Expires.Format(time.DateOnly)})
	}
	r.Finish()
	r.BlockReasons = blockReasons(r)

	if opts.TaskPath != "" && opts.ProtectOutput != "" {
		if r.Result == report.ResultBlocked {
			r.Warnings = append(r.Warnings, "the task definition was not protected because the gate blocked")
		} else if err := protectTo(ctx, taskJSON, opts); err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("the task definition was not protected: %v", err))
			return r, fmt.Errorf("%w: %w", ErrProtect, err)
		} else {
			r.ProtectedTask = opts.ProtectOutput
		}
	}
	return r, nil
}

// protectTo protects the task and writes it to opts.ProtectOutput.
func protectTo(ctx context.Context, task []byte, opts Options) error {
	out, err := protect(ctx, task, opts)
	if err != nil {
		return fmt.Errorf("protect %s: %w", opts.TaskPath, err)
	}
	// As the reports: its folder is made, and the file replaced whole.
	if err := writeFile(opts.ProtectOutput, out, false); err != nil {
		return fmt.Errorf("write the protected task definition: %w", err)
	}
	return nil
}

// protect protects the task offline, or through opts.Console with every
// option the console's API takes (containers included, excluded or skipped
// by image, fail-closed, the defender's platforms). The console mints the
// credential, maps its WAF rules' ports and gives the defender its own
// certificate; options only an offline protect honours are refused rather
// than dropped.
func protect(ctx context.Context, task []byte, opts Options) ([]byte, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	p := opts.Protect
	if opts.Console == nil {
		out, rep, err := fargate.ProtectJSONReport(ctx, task, p)
		if err != nil {
			return nil, err
		}
		logger.Info("task protected offline", "protected", rep.Protected, "skipped", skippedList(rep.Skipped), "notes", rep.Notes)
		return out, nil
	}
	if err := consoleOnly(p); err != nil {
		return nil, err
	}
	res, err := opts.Console.ProtectFargateReport(ctx, task, api.ProtectOptions{
		ConsoleAddr:       p.ConsoleAddr,
		DefenderImage:     p.DefenderImage,
		ExtractEntrypoint: p.ExtractEntrypoint,
		AgentTokenSecret:  p.AgentTokenSecretARN,
		Include:           p.Include,
		Exclude:           p.Exclude,
		SkipImages:        p.SkipImages,
		FailClosed:        p.FailClosed,
		DefenderPlatforms: p.DefenderPlatforms,
	})
	if err != nil {
		return nil, err
	}
	logger.Info("task protected by the console", "protected", res.Protected, "skipped", res.Skipped, "warnings", res.Warnings)
	return res.Task, nil
}

// consoleOnly refuses the protect options the console's API does not take,
// so that none is silently lost when the console protects.
func consoleOnly(p fargate.Options) error {
	var lost []string
	if p.ConsoleCAPEM != "" {
		lost = append(lost, "the console's CA PEM (the console writes the certificate it serves)")
	}
	if len(p.WAFPorts) > 0 {
		lost = append(lost, "WAF ports (the console maps the ports of its WAF rules)")
	}
	if p.DefenderHealthCheck {
		lost = append(lost, "the defender health check")
	}
	if p.DefenderMemoryReservation != 0 {
		lost = append(lost, "the defender's memory reservation")
	}
	if len(lost) > 0 {
		return fmt.Errorf("protecting through the console cannot take %s: protect offline (without a console) to set them", strings.Join(lost, ", "))
	}
	return nil
}

func skippedList(sk []fargate.Skipped) []string {
	out := make([]string, len(sk))
	for i, s := range sk {
		out[i] = s.Name + ": " + s.Reason
	}
	return out
}

func scanImage(ctx context.Context, opts Options, logger *slog.Logger, rule *policy.CIRule, at time.Time, r *report.Report) error {
	if opts.DB == nil {
		return fmt.Errorf("scan %s: no vulnerability DB", opts.Image)
	}
	iopts := opts.ImageOptions
	if iopts.Logger == nil {
		iopts.Logger = logger
	}
	img, err := image.Open(ctx, opts.Image, iopts)
	if err != nil {
		return err
	}
	defer img.Close()
	cfg, err := img.Config()
	if err != nil {
		return err
	}
	ref := ""
	if img.Kind == image.KindRegistry {
		ref = opts.Image
	}
	custom, err := customcheck.Compile(rule.Compliance.Custom)
	if err != nil {
		return err
	}
	// The vulnerability scan and the compliance checks each walk the image;
	// they run side by side so the job takes about as long as the scan alone
	// when a second core is free.
	var (
		sr       *scan.Report
		findings []compliance.Finding
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		sr, err = scan.Opened(gctx, img, opts.DB, scan.Options{Analyzers: opts.Analyzers, IncludeDev: opts.IncludeDev, ToolVersion: opts.ToolVersion, Logger: logger, Now: func() time.Time { return at }})
		return err
	})
	g.Go(func() (err error) {
		findings, err = compliance.CheckImage(gctx, img, compliance.ImageInput{Reference: ref, Config: cfg, Custom: custom})
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	r.Image, r.DB = &sr.Artifact, &sr.DB
	r.Warnings = append(r.Warnings, sr.Warnings...)
	for _, f := range sr.Findings {
		vf := policy.VulnFinding{ID: f.VulnerabilityID, Package: f.PkgName, Severity: f.Severity, FixedVersion: f.FixedVersion}
		if f.FixedVersion != "" && f.PublishedDate != nil {
			// Advisories in the DB are published with their fix; their date
			// starts the grace period.
			vf.FixDate = *f.PublishedDate
		}
		v := rule.DecideVulnerability(vf, at, opts.Ignore)
		r.Vulnerabilities = append(r.Vulnerabilities, report.Vulnerability{Finding: f, Verdict: verdict(v, rule, opts)})
	}
	addCompliance(r, rule, findings, at, opts)
	return nil
}

func checkTask(opts Options, rule *policy.CIRule, at time.Time, r *report.Report) ([]byte, error) {
	data, err := os.ReadFile(opts.TaskPath)
	if err != nil {
		return nil, fmt.Errorf("read task definition: %w", err)
	}
	// Parse with the transform's strict parser first, so that a task that
	// could not be protected fails here with the same message.
	td, err := fargate.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.TaskPath, err)
	}
	task, err := compliance.ParseTask(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.TaskPath, err)
	}
	r.Task = &report.Task{Path: opts.TaskPath, Family: td.Family()}
	addCompliance(r, rule, compliance.CheckTask(task), at, opts)
	return data, nil
}

func addCompliance(r *report.Report, rule *policy.CIRule, findings []compliance.Finding, at time.Time, opts Options) {
	for _, f := range findings {
		v := rule.DecideCompliance(policy.ComplianceFinding{CheckID: f.CheckID, Severity: f.Severity}, at, opts.Ignore)
		r.Compliance = append(r.Compliance, report.ComplianceResult{Finding: f, Verdict: verdict(v, rule, opts)})
	}
}

// verdict is the report's form of the gate's verdict; an exception's
// acceptance says whether the ignore file or the policy rule accepted it.
func verdict(v policy.Verdict, rule *policy.CIRule, opts Options) report.Verdict {
	out := report.Verdict{Action: string(v.Action), Reason: v.Reason}
	if v.Exception == nil || v.Action != policy.ActionIgnore {
		return out
	}
	ex := *v.Exception
	a := &report.Acceptance{Source: report.AcceptedByPolicy, Location: rule.Name, Reason: ex.Reason}
	if !ex.Expires.IsZero() {
		a.Expires = ex.Expires.Format(time.DateOnly)
	}
	if slices.ContainsFunc(opts.Ignore, func(e policy.Exception) bool { return sameException(e, ex) }) {
		a.Source, a.Location = report.AcceptedByIgnoreFile, opts.IgnoreFile
		if a.Location == "" {
			a.Location = policy.IgnoreFileName
		}
	}
	out.Accepted = a
	return out
}

func sameException(a, b policy.Exception) bool {
	return a.ID == b.ID && a.Package == b.Package && a.Reason == b.Reason && a.Expires.Equal(b.Expires.Time)
}

// blockReasons says in words why the gate blocked.
func blockReasons(r *report.Report) []string {
	var vulns, checks []string
	for _, v := range r.Vulnerabilities {
		if v.Verdict.Action == report.ActionBlock {
			vulns = append(vulns, fmt.Sprintf("%s (%s, %s %s)", v.VulnerabilityID, v.Severity, v.PkgName, v.InstalledVersion))
		}
	}
	for _, c := range r.Compliance {
		if c.Verdict.Action == report.ActionBlock {
			checks = append(checks, fmt.Sprintf("%s %s (%s)", c.CheckID, c.Title, c.Target))
		}
	}
	var out []string
	if len(vulns) > 0 {
		out = append(out, fmt.Sprintf("%d blocking vulnerabilities: %s", len(vulns), capList(vulns, 10)))
	}
	if len(checks) > 0 {
		out = append(out, fmt.Sprintf("%d blocking compliance findings: %s", len(checks), capList(checks, 10)))
	}
	return out
}

func capList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}
