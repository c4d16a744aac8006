package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"

	"github.com/taskguard/taskguard/agent/waf"
	"github.com/taskguard/taskguard/console/policy"
)

// mix.lua is wrk's request generator: the benign mix of main.go with values
// that change on every request (numbers, session cookie), browser headers
// and Host shop.example.com; its done() prints one TGRESULT line.
//
//go:embed mix.lua
var mixLua string

// shopAPI describes every request of the benign mix: the rule's API
// protection enforces it during the wrk runs.
//
//go:embed shop-openapi.yaml
var shopAPI string

// runServe runs one target in this process until ctx ends: the app, a bare
// httputil.ReverseProxy or plain Coraza+CRS in front of one. It prints
// "LISTEN host:port" once it accepts connections.
func runServe(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("waf-bench serve", flag.ContinueOnError)
	kind := fs.String("kind", "app", "app, bare or coraza")
	upstream := fs.String("upstream", "", "host:port of the app (bare, coraza, taskguard)")
	policyFile := fs.String("policy", "", "taskguard: the policy file whose first WAF rule the proxy applies (its app port is replaced by the upstream's)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process until it ends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		stop, err := profileIf(true, *cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var h http.Handler
	switch *kind {
	case "app":
		h = http.HandlerFunc(appHandler)
	case "bare", "coraza":
		u := &url.URL{Scheme: "http", Host: *upstream}
		h = newBareProxy(u)
		if *kind == "coraza" {
			w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(`
Include @coraza.conf-recommended
Include @crs-setup.conf.example
Include @owasp_crs/*.conf
SecRuleEngine On
SecAuditEngine Off
`))
			if err != nil {
				return fmt.Errorf("plain coraza: %w", err)
			}
			h = txhttp.WrapHandler(w, h)
		}
	case "taskguard": // the sidecar's proxy in this process, to profile it
		b, err := os.ReadFile(*policyFile)
		if err != nil {
			return err
		}
		var pol policy.Policy
		if err := json.Unmarshal(b, &pol); err != nil || len(pol.WAF) == 0 {
			return fmt.Errorf("policy %s: no WAF rule (%v)", *policyFile, err)
		}
		_, port, _ := net.SplitHostPort(*upstream)
		p, _ := strconv.Atoi(port)
		rule := pol.WAF[0]
		rule.AppPort = uint16(p)
		proxy, err := waf.New(rule)
		if err != nil {
			return err
		}
		h = proxy
	default:
		return fmt.Errorf("unknown kind %q", *kind)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(out, "LISTEN %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type wrkConfig struct {
	defender    string
	compare     string
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	connections int
	plain       bool
	extras      bool
	keep        bool
	perf        string
	flood       int
}

// runWrk measures the real sidecar process (taskguard-defender sidecar with
// a policy file) against a bare reverse proxy, each in its own process at
// GOMAXPROCS=1, loaded by wrk with the benign mix, targets interleaved.
func runWrk(ctx context.Context, out io.Writer, args []string) error {
	var c wrkConfig
	fs := flag.NewFlagSet("waf-bench wrk", flag.ContinueOnError)
	fs.StringVar(&c.defender, "defender", "", "the taskguard-defender binary (required; run.sh builds it)")
	fs.StringVar(&c.compare, "compare", "", "a second taskguard-defender binary (another build), measured as one more target in the same rounds")
	fs.DurationVar(&c.duration, "duration", 8*time.Second, "wrk time per target per round")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "unmeasured wrk time per target first")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds over all targets")
	fs.IntVar(&c.connections, "connections", 16, "wrk connections (one wrk thread)")
	fs.BoolVar(&c.plain, "plain", true, "also measure plain Coraza+CRS")
	fs.BoolVar(&c.extras, "extras", true, "turn the API, rate-limit, sources and bots protections on besides CRS's")
	fs.BoolVar(&c.keep, "keep", false, "keep the work folder (policy, audits, logs)")
	fs.IntVar(&c.flood, "flood", 0, "rate limit the sidecars to this many requests per second per client (prevent): the load is then a flood from one client; the audits each sidecar wrote are counted after it stopped")
	fs.StringVar(&c.perf, "perf", "", "write a perf profile (perf record -g, Debian package linux-perf) of the sidecar process during its last round to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.defender == "" || c.duration <= 0 || c.rounds <= 0 || c.connections <= 0 || c.warmup < 0 || c.flood < 0 || (c.flood > 0 && c.flood < 10) {
		return errors.New("give -defender, and positive duration, rounds and connections (and -flood 0 or at least 10: the detection check sends 9 requests)")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (Debian package wrk; scripts/install-deps.sh)")
	}
	if _, err := exec.LookPath("perf"); c.perf != "" && err != nil {
		return errors.New("-perf: perf is not installed (Debian package linux-perf)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "waf-bench-wrk-")
	if err != nil {
		return err
	}
	if c.keep {
		fmt.Fprintln(out, "work folder:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	appAddr, _, err := startServe(ctx, self, dir, "app", "", false)
	if err != nil {
		return err
	}
	bareAddr, barePID, err := startServe(ctx, self, dir, "bare", appAddr, true)
	if err != nil {
		return err
	}
	targets := []target{
		{name: "app direct", url: &url.URL{Scheme: "http", Host: appAddr}},
		{name: "bare ReverseProxy", url: &url.URL{Scheme: "http", Host: bareAddr}, pid: barePID},
	}
	if c.plain {
		plainAddr, plainPID, err := startServe(ctx, self, dir, "coraza", appAddr, true)
		if err != nil {
			return err
		}
		targets = append(targets, target{name: "plain Coraza+CRS", url: &url.URL{Scheme: "http", Host: plainAddr}, pid: plainPID})
	}
	var sidecars []sidecarRun
	if c.compare != "" {
		// The other build first: the report's ratios are of the last target.
		cmpAddr, cmpPID, cmpAudits, err := startSidecar(ctx, c.compare, filepath.Join(dir, "compare"), appAddr, c.extras, c.flood)
		if err != nil {
			return fmt.Errorf("compared sidecar: %w", err)
		}
		u := &url.URL{Scheme: "http", Host: cmpAddr}
		if err := checkDetection(ctx, u, attacksFor(nil)); err != nil {
			return fmt.Errorf("compared sidecar: %w", err)
		}
		if _, err := waitLines(cmpAudits, len(attacksFor(nil)), 30*time.Second); err != nil {
			return fmt.Errorf("compared sidecar: %w", err)
		}
		targets = append(targets, target{name: "sidecar (-compare)", url: u, pid: cmpPID})
		sidecars = append(sidecars, sidecarRun{"sidecar (-compare)", cmpPID, cmpAudits})
	}
	sidecarAddr, sidecarPID, auditFile, err := startSidecar(ctx, c.defender, dir, appAddr, c.extras, c.flood)
	if err != nil {
		return err
	}
	targets = append(targets, target{name: "taskguard sidecar", url: &url.URL{Scheme: "http", Host: sidecarAddr}, pid: sidecarPID})
	sidecars = append(sidecars, sidecarRun{"taskguard sidecar", sidecarPID, auditFile})
	sidecarURL := targets[len(targets)-1].url

	// The sidecar must block the attacks and pass the benign mix without a
	// single audit (API, bots and sources included).
	if err := checkDetection(ctx, sidecarURL, attacksFor(nil)); err != nil {
		return fmt.Errorf("taskguard sidecar: %w", err)
	}
	// The sidecar ships audits asynchronously: wait for the attacks' ones.
	attacksAudited, err := waitLines(auditFile, len(attacksFor(nil)), 30*time.Second)
	if err != nil {
		return err
	}
	script := filepath.Join(dir, "mix.lua")
	if err := os.WriteFile(script, []byte(mixLua), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrk 1 thread, %d connections, %v warm-up then %v x %d interleaved rounds; each proxy its own process at GOMAXPROCS=1\n",
		c.connections, c.warmup, c.duration, c.rounds)
	if c.extras {
		fmt.Fprintln(out, "sidecar rule: every CRS protection prevent, API (OpenAPI) prevent, rate limit prevent, sources prevent, bots alert")
	} else {
		fmt.Fprintln(out, "sidecar rule: every CRS protection prevent (API, rate limit, sources, bots off)")
	}
	if c.warmup > 0 {
		for _, t := range targets {
			if _, err := runWrkOnce(ctx, script, t.url, c.connections, c.warmup, c.flood > 0); err != nil {
				return fmt.Errorf("%s: warm-up: %w", t.name, err)
			}
		}
	}
	results := make([][]wrkResult, len(targets))
	for round := 0; round < c.rounds; round++ {
		for i, t := range targets {
			var stopPerf func() error
			if c.perf != "" && round == c.rounds-1 && i == len(targets)-1 {
				if stopPerf, err = startPerf(ctx, t.pid, c.perf); err != nil {
					return err
				}
			}
			cpu0 := cpuTime(t.pid)
			r, err := runWrkOnce(ctx, script, t.url, c.connections, c.duration, c.flood > 0)
			if stopPerf != nil {
				if perr := stopPerf(); perr != nil && err == nil {
					err = perr
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if t.pid > 0 && r.requests > 0 {
				r.cpuPerReq = (cpuTime(t.pid) - cpu0) / time.Duration(r.requests)
			}
			results[i] = append(results[i], r)
		}
	}
	if c.flood > 0 {
		reportWrk(out, targets, results)
		// Every audit, the last counts included, is written once a
		// sidecar has stopped (SIGTERM, as ECS stops a task).
		for _, s := range sidecars {
			if err := stopGracefully(s.pid, 60*time.Second); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			n, err := countLines(s.audits)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: %d audits written under the flood of one client over a limit of %d requests/s (after it stopped; attack check included)\n", s.name, n, c.flood)
		}
		return nil
	}
	// Audits of the load, if any, are shipped within the shipper's period.
	audited, err := waitLines(auditFile, attacksAudited+1, 3*time.Second)
	if err != nil && !errors.Is(err, errTooFew) {
		return err
	}
	reportWrk(out, targets, results)
	fmt.Fprintf(out, "audits written by the sidecar under the benign load: %d (attack check before: %d)\n", audited-attacksAudited, attacksAudited)
	return nil
}

// sidecarRun is a sidecar process of the wrk mode and its audit file.
type sidecarRun struct {
	name   string
	pid    int
	audits string
}

// stopGracefully sends SIGTERM to pid and waits until the process is gone.
func stopGracefully(pid int, wait time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	deadline := time.Now().Add(wait)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("still running %v after SIGTERM", wait)
		}
		time.Sleep(50 * time.Millisecond) // polling a real process, bounded
	}
	return nil
}

// startPerf records the CPU samples of process pid (call graphs, 999 Hz)
// into file until the returned function stops it.
func startPerf(ctx context.Context, pid int, file string) (func() error, error) {
	cmd := exec.CommandContext(ctx, "perf", "record", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", file)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		// perf ends on the interrupt, with its data written.
		var exit *exec.ExitError
		if err := cmd.Wait(); err != nil && !(errors.As(err, &exit) && !exit.Exited()) {
			return fmt.Errorf("perf record: %w: %s", err, strings.TrimSpace(out.String()))
		}
		return nil
	}, nil
}

// startServe starts this program as one target and returns its address.
func startServe(ctx context.Context, self, dir, kind, upstream string, oneCPU bool) (string, int, error) {
	cmd := exec.CommandContext(ctx, self, "serve", "-kind", kind, "-upstream", upstream)
	if oneCPU {
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	return startAndRead(cmd, filepath.Join(dir, kind+".log"))
}

// startAndRead starts cmd and waits for its "LISTEN addr" line; it
// returns the address and the process ID.
func startAndRead(cmd *exec.Cmd, logPath string) (string, int, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return "", 0, err
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return addr, cmd.Process.Pid, nil
		}
	}
	return "", 0, fmt.Errorf("%s exited before listening (log %s)", cmd.Args, logPath)
}

// startSidecar writes the policy file and starts the real sidecar process;
// it returns the WAF's address once it answers, and the audit file.
func startSidecar(ctx context.Context, defender, dir, appAddr string, extras bool, flood int) (addr string, pid int, audits string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, "", err
	}
	_, appPortS, _ := net.SplitHostPort(appAddr)
	appPort, _ := strconv.Atoi(appPortS)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the WAF
	if err != nil {
		return "", 0, "", err
	}
	wafPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	prot := map[policy.Protection]policy.Effect{}
	for _, p := range policy.Protections {
		prot[p] = policy.EffectPrevent
	}
	rule := policy.WAFRule{Name: "bench", ExternalPort: uint16(wafPort), AppPort: uint16(appPort), Protections: prot}
	if extras {
		rule.API = &policy.WAFAPI{Effect: policy.EffectPrevent, Spec: shopAPI}
		rule.RateLimit = &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: 1_000_000, PeriodSeconds: 1}
		rule.Sources = &policy.WAFSources{Effect: policy.EffectPrevent, Allowed: []string{"127.0.0.0/8"}, Denied: []string{"203.0.113.0/24"}}
		rule.Bots = policy.EffectAlert
	}
	if flood > 0 {
		rule.RateLimit = &policy.WAFRateLimit{Effect: policy.EffectPrevent, Requests: flood, PeriodSeconds: 1}
	}
	pol := policy.Policy{WAF: []policy.WAFRule{rule}}
	if err := pol.Validate(); err != nil {
		return "", 0, "", err
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return "", 0, "", err
	}
	polFile, auditFile := filepath.Join(dir, "policy.json"), filepath.Join(dir, "audits.jsonl")
	if err := os.WriteFile(polFile, b, 0o600); err != nil {
		return "", 0, "", err
	}
	logf, err := os.Create(filepath.Join(dir, "sidecar.log"))
	if err != nil {
		return "", 0, "", err
	}
	cmd := exec.CommandContext(ctx, defender, "sidecar", "--policy", polFile, "--audits", auditFile,
		"--socket", filepath.Join(dir, "sidecar.sock"), "--state-dir", filepath.Join(dir, "state"),
		"--task", "bench", "--waf-addr", "127.0.0.1", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", 0, "", fmt.Errorf("start sidecar: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(wafPort))
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return addr, cmd.Process.Pid, auditFile, nil
		}
		select {
		case err := <-exited:
			return "", 0, "", fmt.Errorf("sidecar exited (%v); see %s", err, logf.Name())
		case <-time.After(50 * time.Millisecond): // polling the real listener, bounded below
		}
		if time.Now().After(deadline) {
			return "", 0, "", errors.New("the sidecar's WAF did not listen within 60 s")
		}
	}
}

// cpuTime is the user and system CPU time a process has used so far (0
// when it cannot be read).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces), from field 3.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// Linux for every architecture Go supports).
const clockTicks = 100

var errTooFew = errors.New("fewer lines than expected")

// waitLines polls path until it has at least n lines or the wait is over.
func waitLines(path string, n int, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		got, err := countLines(path)
		if err != nil || got >= n {
			return got, err
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%s: %d lines, want %d: %w", path, got, n, errTooFew)
		}
		time.Sleep(50 * time.Millisecond) // polling a real file, bounded
	}
}

func countLines(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return strings.Count(string(b), "\n"), err
}

// wrkResult is one wrk run, from mix.lua's TGRESULT line.
type wrkResult struct {
	requests          int
	cpuPerReq         time.Duration // the target process's CPU time per request
	duration          time.Duration
	p50, p99          time.Duration
	non2xx, sockError int
}

func (r wrkResult) rps() float64 { return float64(r.requests) / r.duration.Seconds() }

func runWrkOnce(ctx context.Context, script string, u *url.URL, conns int, d time.Duration, refusalsExpected bool) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), "--timeout", "10s", "-s", script, u.String())
	b, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TGRESULT ")
		if !ok {
			continue
		}
		var r wrkResult
		var durUS, p50, p99 int64
		if _, err := fmt.Sscan(rest, &r.requests, &durUS, &p50, &p99, &r.non2xx, &r.sockError); err != nil {
			return wrkResult{}, fmt.Errorf("wrk result %q: %w", line, err)
		}
		r.duration, r.p50, r.p99 = time.Duration(durUS)*time.Microsecond, time.Duration(p50)*time.Microsecond, time.Duration(p99)*time.Microsecond
		if (r.non2xx > 0 && !refusalsExpected) || r.sockError > 0 {
			return r, fmt.Errorf("%d non-2xx answers and %d socket errors under the benign mix", r.non2xx, r.sockError)
		}
		return r, nil
	}
	return wrkResult{}, fmt.Errorf("no TGRESULT in wrk output: %s", b)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func reportWrk(out io.Writer, targets []target, results [][]wrkResult) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s (median)\tp50\tp99\tadded p99\tratio to bare, per round\tCPU/request\tCPU/request to bare\t")
	direct, bare := results[0], results[1]
	for i, t := range targets {
		var rps, p50, p99, added, ratios, cpu, cpuRatio []float64
		for j, r := range results[i] {
			cpu = append(cpu, float64(r.cpuPerReq))
			if bare[j].cpuPerReq > 0 {
				cpuRatio = append(cpuRatio, float64(r.cpuPerReq)/float64(bare[j].cpuPerReq))
			}
			rps = append(rps, r.rps())
			p50 = append(p50, float64(r.p50))
			p99 = append(p99, float64(r.p99))
			added = append(added, float64(r.p99-direct[j].p99))
			ratios = append(ratios, r.rps()/bare[j].rps())
		}
		rs := make([]string, len(ratios))
		for j, x := range ratios {
			rs[j] = fmt.Sprintf("%.2f", x)
		}
		cpuCols := "-\t-"
		if t.pid > 0 && len(cpuRatio) > 0 {
			cpuCols = fmt.Sprintf("%v\t%.2fx", time.Duration(median(cpu)).Round(time.Microsecond), median(cpuRatio))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%s (median %.2fx)\t%s\t\n", t.name, median(rps), time.Duration(median(p50)).Round(10*time.Microsecond),
			time.Duration(median(p99)).Round(10*time.Microsecond), time.Duration(median(added)).Round(10*time.Microsecond), strings.Join(rs, " "), median(ratios), cpuCols)
	}
	_ = tw.Flush()
	for i, t := range targets[2:] {
		if t.name == "plain Coraza+CRS" {
			continue
		}
		var addedRatio []float64
		for j, r := range results[i+2] {
			addedRatio = append(addedRatio, float64(r.p99-direct[j].p99)/float64(bare[j].p99-direct[j].p99))
		}
		fmt.Fprintf(out, "%s added p99 / bare added p99, per round: %s (median %.2fx)\n", t.name, fmtList(addedRatio), median(addedRatio))
	}
	// CPU per request against the bare proxy's, round by round: an A/B of
	// two sidecars (-compare) reads best from these pairs.
	for i, t := range targets[2:] {
		if t.pid <= 0 {
			continue
		}
		var cpuRatio []float64
		for j, r := range results[i+2] {
			if b := bare[j].cpuPerReq; b > 0 {
				cpuRatio = append(cpuRatio, float64(r.cpuPerReq)/float64(b))
			}
		}
		if len(cpuRatio) > 0 {
			fmt.Fprintf(out, "%s CPU/request / bare CPU/request, per round: %s (median %.2fx)\n", t.name, fmtList(cpuRatio), median(cpuRatio))
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(out, "load average (1, 5, 15 min) at the end: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}
