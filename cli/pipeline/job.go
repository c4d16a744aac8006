package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/tlscert"
	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/report"
	"github.com/taskguard/taskguard/scanners/sbom"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// JobOptions describe a whole CI job with typed options, for callers that
// are not a command line (the GitHub Action): where the gate's rules come
// from, the vulnerability DB, the console and the report files, around the
// run's own Options. Credentials are fields, never environment variables.
type JobOptions struct {
	// Run is the scan-gate-protect run; its Policy, PolicySource, Ignore,
	// IgnoreFile, DB and Console are filled from the fields below.
	Run Options
	// PolicyFile is a local policy file; empty: the console's CI rules with
	// Console, else the embedded default policy.
	PolicyFile string
	// IgnoreFile is the ignore file; empty: .taskguardignore when it exists.
	IgnoreFile string
	DB         DBOptions
	// OpenDB, when set, opens the DB instead of DB (the command line's,
	// which shows the download's progress on a terminal).
	OpenDB func(context.Context) (*vulndb.DB, error)
	// Console, when set, supplies the CI rules, receives the results and
	// protects the task (it mints the defender's credential).
	Console *ConsoleOptions
	// DefenderCAFile, for a task protected offline (without Console), is a
	// PEM file of the certificate(s) the defender trusts for the console at
	// Run.Protect.ConsoleAddr: it goes into the task as
	// TASKGUARD_CONSOLE_CA_PEM, as task protect --console-ca does. With
	// Console, the console writes the certificate it serves.
	DefenderCAFile string
	Reports        ReportFiles
	// Messages receives what the job says on the way (the policy used, the
	// publication); nil discards it.
	Messages io.Writer
	// Names maps the job's inputs ("policy", "ignore-file", "console",
	// "sbom", "waf-port", "health-check") to what the caller calls them (its
	// flags, its step inputs), for error messages; nil keeps the names as
	// they are.
	Names func(input string) string
}

func (o *JobOptions) name(input string) string {
	if o.Names == nil {
		return input
	}
	return o.Names(input)
}

// offlineOnly refuses, before anything runs, the protect options only a
// task protected offline takes when the console is to protect it: its API
// maps the external ports of the console's own WAF rules and gives the
// defender no health check.
func (o *JobOptions) offlineOnly() error {
	if o.Console == nil || o.Run.TaskPath == "" || o.Run.ProtectOutput == "" {
		return nil
	}
	var names []string
	if len(o.Run.Protect.WAFPorts) > 0 {
		names = append(names, o.name("waf-port"))
	}
	if o.Run.Protect.DefenderHealthCheck {
		names = append(names, o.name("health-check"))
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%s: only a task protected offline takes this; with %s the console protects the task, "+
		"maps the external ports of its own WAF rules and gives the defender no health check", strings.Join(names, " and "), o.name("console"))
}

// DBOptions locate the vulnerability DB and say whether it may be updated.
type DBOptions struct {
	// Dir is the DB's directory; empty: vulndb.DefaultDir().
	Dir        string
	Repository string
	Offline    bool
	SkipUpdate bool
}

// ConsoleOptions reach the console.
type ConsoleOptions struct {
	// Client, when set, is used as it is (the other fields but URL and
	// NoPublish are then ignored); URL still names the console.
	Client *api.Client
	URL    string
	// Token, else User and Password, authenticate.
	Token, User, Password string
	// CAFile is a PEM file of certificates to trust; Insecure skips the check.
	CAFile   string
	Insecure bool
	// NoPublish keeps the results from the console.
	NoPublish bool
}

// ReportFiles are the report files to write; empty paths are skipped.
// Markdown is appended to (a GitHub step summary is shared by every step).
type ReportFiles struct {
	JUnit, SARIF, JSON, Markdown string
	// SBOM is the image's SBOM: SPDX 2.3 JSON for *.spdx.json, else
	// CycloneDX 1.6 JSON. The scan just filled the layer cache, so with one
	// no layer is read again.
	SBOM string
	// Dockerfile is the repository file SARIF image findings point at.
	Dockerfile string
}

// RunJob prepares the run from opts (policy, ignore file, DB, console),
// runs it, writes every report file (and the SBOM), and publishes the
// results to the console. A blocked gate is a report with Result "blocked"
// and no error. When the run got as far as a report, the report is
// returned, written and published, with any error that came after the gate
// (a failed protect wraps ErrProtect; an SBOM or a publication that failed);
// a nil report means the job could not run.
func RunJob(ctx context.Context, opts JobOptions) (*report.Report, error) {
	msg := opts.Messages
	if msg == nil {
		msg = io.Discard
	}
	run := opts.Run
	if err := opts.offlineOnly(); err != nil {
		return nil, err
	}
	var client *api.Client
	if opts.Console != nil {
		client = opts.Console.Client
		if client == nil {
			var err error
			if client, err = opts.Console.client(); err != nil {
				return nil, fmt.Errorf("%s: %w", opts.name("console"), err)
			}
		}
	}
	switch {
	case opts.PolicyFile != "":
		p, err := policy.LoadPolicy(opts.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opts.name("policy"), err)
		}
		run.Policy, run.PolicySource = p, report.PolicySource{Source: "file", Location: opts.PolicyFile}
	case client != nil:
		rules, rev, err := client.CIRules(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: fetch the CI rules: %w", opts.name("console"), err)
		}
		p := &policy.Policy{Revision: rev, CI: rules}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%s: the console's CI rules: %w", opts.name("console"), err)
		}
		run.Policy = p
		run.PolicySource = report.PolicySource{Source: "console", Location: fmt.Sprintf("%s (revision %d)", opts.Console.URL, rev)}
	}
	ignorePath, optional := opts.IgnoreFile, false
	if ignorePath == "" {
		ignorePath, optional = policy.IgnoreFileName, true
	}
	ign, err := policy.LoadIgnoreFile(ignorePath, optional)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.name("ignore-file"), err)
	}
	run.Ignore, run.IgnoreFile = ign.Ignore, ignorePath

	if client != nil && run.TaskPath != "" && run.ProtectOutput != "" {
		// The console mints the defender's agent credential.
		run.Console = client
		if run.Protect.ConsoleAddr == "" {
			if run.Protect.ConsoleAddr, err = consoleHost(opts.Console.URL); err != nil {
				return nil, fmt.Errorf("%s: %w", opts.name("console"), err)
			}
		}
	}
	if client == nil && run.TaskPath != "" && run.ProtectOutput != "" && opts.DefenderCAFile != "" {
		if run.Protect.ConsoleAddr == "" {
			return nil, fmt.Errorf("%s is for the console the defender reports to: give %s too", opts.name("console-ca"), opts.name("console-addr"))
		}
		_, pemText, err := tlscert.ReadPEMFile(opts.DefenderCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opts.name("console-ca"), err)
		}
		run.Protect.ConsoleCAPEM = pemText
	}
	if run.Image != "" {
		// A local path that is not there is named now, not after a DB
		// download or as a registry pull.
		if err := image.CheckSource(run.Image, run.ImageOptions.Kind); err != nil {
			return nil, err
		}
		open := opts.OpenDB
		if open == nil {
			open = func(ctx context.Context) (*vulndb.DB, error) { return openDB(ctx, opts.DB) }
		}
		db, err := open(ctx)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		run.DB = db
	}
	rep, runErr := Run(ctx, run)
	if rep == nil {
		return nil, runErr
	}
	fmt.Fprintf(msg, "policy: %s (rule %s)\n", strings.TrimSpace(rep.Policy.Source+" "+rep.Policy.Location), rep.Policy.Rule)
	// From here on every output is written whatever else fails (a failed
	// protect or SBOM included): the job's findings are never lost.
	if err := WriteReports(ctx, rep, opts.Reports); err != nil {
		return nil, err
	}
	errs := []error{runErr}
	if opts.Reports.SBOM != "" && run.Image != "" {
		if err := writeSBOM(ctx, run, opts.Reports.SBOM); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", opts.name("sbom"), err))
		} else {
			fmt.Fprintf(msg, "SBOM written to %s\n", opts.Reports.SBOM)
		}
	}
	if client != nil && !opts.Console.NoPublish {
		if err := publish(ctx, client, rep, msg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", opts.name("console"), err))
		}
	}
	return rep, errors.Join(errs...)
}

// writeSBOM inventories the run's image again (from the layer cache when
// it has one) and writes its SBOM to path.
func writeSBOM(ctx context.Context, run Options, path string) error {
	subj, err := sbom.FromImage(ctx, run.Image, sbom.ImageOptions{
		Image:       run.ImageOptions,
		Analyze:     analyzer.Options{Analyzers: run.Analyzers, Logger: run.Logger, IncludeDev: run.IncludeDev},
		ToolVersion: run.ToolVersion,
	})
	if err == nil {
		err = ErrIncomplete(ctx, "inventory "+run.Image)
	}
	if err != nil {
		return err
	}
	return sbom.WriteFile(path, subj)
}

func publish(ctx context.Context, client *api.Client, rep *report.Report, msg io.Writer) error {
	var buf bytes.Buffer
	if err := report.WriteJSON(ctx, &buf, rep); err != nil {
		return err
	}
	sum, err := client.PublishScan(ctx, buf.Bytes())
	switch {
	case api.IsStatus(err, http.StatusForbidden):
		// A user that may protect but not publish: the job's result stands.
		fmt.Fprintf(msg, "warning: the console user may not publish scan results (that needs the ci role); the results were not published: %v\n", err)
		return nil
	case err != nil:
		return fmt.Errorf("publish the scan results: %w", err)
	}
	fmt.Fprintf(msg, "scan results published to the console (scan %s)\n", sum.ID)
	return nil
}

func openDB(ctx context.Context, o DBOptions) (*vulndb.DB, error) {
	dir := o.Dir
	if dir == "" {
		var err error
		if dir, err = vulndb.DefaultDir(); err != nil {
			return nil, err
		}
	}
	if !o.SkipUpdate {
		if _, err := vulndb.Update(ctx, dir, vulndb.UpdateOptions{Repository: o.Repository, Offline: o.Offline}); err != nil {
			return nil, err
		}
	}
	return vulndb.OpenContext(ctx, dir)
}

// WriteReports writes every report file of files: whole files through a
// rename, the Markdown appended.
func WriteReports(ctx context.Context, rep *report.Report, files ReportFiles) error {
	for _, f := range []struct {
		what, path string
		write      func(io.Writer) error
		appendTo   bool
	}{
		{"JUnit", files.JUnit, func(w io.Writer) error { return report.WriteJUnit(ctx, w, rep) }, false},
		{"SARIF", files.SARIF, func(w io.Writer) error {
			return report.WriteSARIF(ctx, w, rep, report.SARIFOptions{ImageFile: files.Dockerfile})
		}, false},
		{"JSON", files.JSON, func(w io.Writer) error { return report.WriteJSON(ctx, w, rep) }, false},
		{"Markdown", files.Markdown, func(w io.Writer) error {
			return report.WriteMarkdown(ctx, w, rep, report.MarkdownOptions{})
		}, true},
	} {
		if f.path == "" {
			continue
		}
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return err
		}
		if err := writeFile(f.path, buf.Bytes(), f.appendTo); err != nil {
			return fmt.Errorf("write the %s report: %w", f.what, err)
		}
	}
	return nil
}

func writeFile(path string, data []byte, appendTo bool) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if appendTo {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func (o *ConsoleOptions) client() (*api.Client, error) {
	var opts []api.Option
	switch {
	case o.Token != "":
		opts = append(opts, api.WithToken(o.Token))
	case o.User != "" && o.Password != "":
		opts = append(opts, api.WithBasicAuth(o.User, o.Password))
	default:
		return nil, errors.New("no credentials: give a token, or a user and a password")
	}
	if o.CAFile != "" || o.Insecure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("the console CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("the console CA: %s holds no PEM certificate", o.CAFile)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, api.WithTLSConfig(cfg))
	}
	return api.NewClient(o.URL, opts...)
}

func consoleHost(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", errors.New("want https://host[:port]")
	}
	return u.Host, nil
}
