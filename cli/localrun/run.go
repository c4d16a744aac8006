package localrun

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HostLoopback is the address that reaches the host's 127.0.0.1 from inside
// a pod on slirp4netns with allow_host_loopback=true.
const HostLoopback = "10.0.2.2"

// DefaultNetwork is the pod network: user-mode networking that can reach the
// host's loopback (a console or test servers on 127.0.0.1).
const DefaultNetwork = "slirp4netns:allow_host_loopback=true"

// PodLabel marks the pods run-local creates (its value is the task family):
// after a run that could not clean up (SIGKILL), remove them with
// podman pod rm -f $(podman pod ps -q --filter label=io.taskguard.run-local).
const PodLabel = "io.taskguard.run-local"

// Options configure a local run.
type Options struct {
	// Podman is the podman binary; empty means "podman" on PATH.
	Podman string
	// Root and RunRoot, when set, are podman's storage directories.
	Root, RunRoot string
	// ConsoleURL overrides every container's TASKGUARD_CONSOLE.
	ConsoleURL string
	// Archives are image archives to load first: image name → file. An empty
	// name keeps the names recorded in the archive.
	Archives map[string]string
	// DNS servers for the pod (else podman's default resolv.conf).
	DNS []string
	// Network is the pod's network; empty means DefaultNetwork.
	Network string
	// InsecureRegistry pulls over plain HTTP or unverified TLS
	// (podman --tls-verify=false), for registries on loopback.
	InsecureRegistry bool
	// Keep leaves the pod and its containers behind for inspection.
	Keep bool
	// Output receives the containers' logs, each line prefixed with the
	// container name; nil discards them.
	Output io.Writer
	// LookupEnv provides values for ECS secrets (by secret name); nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// StopTimeout is how long containers get between SIGTERM and SIGKILL
	// (ECS's stopTimeout); zero means 5 s.
	StopTimeout time.Duration
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
}

// Result is how a task ended.
type Result struct {
	// Pod is the pod's name.
	Pod string
	// StoppedBy is the essential container whose exit stopped the task.
	StoppedBy string
	// ExitCode is StoppedBy's exit code.
	ExitCode int
	// Containers holds each container's final state, in start order.
	Containers []ContainerResult
	// NetNS is the pod's network namespace (a path under /run/netns), and
	// Volumes the containers' volumes podman made: teardown removes both.
	NetNS   string
	Volumes []string
}

// ContainerResult is one container's final state.
type ContainerResult struct {
	Name     string
	Started  bool
	ExitCode int
}

type runner struct {
	p     *podman
	task  *Task
	opts  Options
	log   *slog.Logger
	pod   string
	names map[string]string // container name → podman container name
	order []*Container      // start order
	logs  sync.WaitGroup
}

// Run runs the task to its end: it returns when an essential container
// exits (the others are then stopped) or ctx is cancelled, after tearing the
// pod down (unless Options.Keep).
func Run(ctx context.Context, task *Task, opts Options) (res *Result, err error) {
	dir, err := os.MkdirTemp("", "taskguard-run-local-")
	if err != nil {
		return nil, fmt.Errorf("run-local: %w", err)
	}
	defer os.RemoveAll(dir)
	p, err := newPodman(dir, opts)
	if err != nil {
		return nil, err
	}
	r := &runner{p: p, task: task, opts: opts, log: opts.Log, names: map[string]string{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.opts.StopTimeout <= 0 {
		r.opts.StopTimeout = 5 * time.Second
	}
	if r.opts.Network == "" {
		r.opts.Network = DefaultNetwork
	}
	if r.opts.LookupEnv == nil {
		r.opts.LookupEnv = os.LookupEnv
	}
	order, err := task.startOrder()
	if err != nil {
		return nil, err
	}
	r.order = order
	r.pod = "taskguard-" + sanitize(task.Family) + "-" + randomHex(4)
	for _, c := range order {
		r.names[c.Name] = r.pod + "-" + sanitize(c.Name)
	}
	// Everything that can be refused is checked before anything is created.
	specs := map[string][]string{}
	for _, c := range order {
		args, err := r.createArgs(c)
		if err != nil {
			return nil, err
		}
		specs[c.Name] = args
	}
	if err := r.loadArchives(ctx); err != nil {
		return nil, err
	}
	res = &Result{Pod: r.pod}
	// Teardown is registered before the pod exists: Ctrl-C while podman
	// creates it must not leave it behind (removal ignores what is absent).
	defer func() {
		if opts.Keep {
			r.log.Info("keeping the pod", "pod", r.pod)
			return
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if terr := r.teardown(tctx); terr != nil && err == nil {
			err = terr
		}
	}()
	if err := r.createPod(ctx); err != nil {
		return res, err
	}
	started := map[string]bool{}
	defer func() {
		for _, c := range order {
			cr := ContainerResult{Name: c.Name, Started: started[c.Name], ExitCode: -1}
			if st, ok := r.finalStates(context.WithoutCancel(ctx))[c.Name]; ok {
				cr.ExitCode = st.ExitCode
			}
			res.Containers = append(res.Containers, cr)
		}
	}()
	for _, c := range order {
		if err := r.waitDependencies(ctx, c); err != nil {
			r.stopAll(context.WithoutCancel(ctx))
			return res, err
		}
		args := append([]string{"run", "-d", "--pod", r.pod, "--name", r.names[c.Name]}, specs[c.Name]...)
		if _, err := p.run(ctx, args...); err != nil {
			r.stopAll(context.WithoutCancel(ctx))
			return res, fmt.Errorf("start container %q: %w", c.Name, err)
		}
		started[c.Name] = true
		r.log.Info("started", "container", c.Name, "image", c.Image)
		r.record(context.WithoutCancel(ctx), res, c.Name)
		r.followLogs(ctx, c.Name)
	}
	err = r.watch(ctx, res)
	r.stopAll(context.WithoutCancel(ctx))
	r.waitLogs()
	return res, err
}

// record notes the pod's network namespace and the container's anonymous
// volumes, so that callers can check the teardown.
func (r *runner) record(ctx context.Context, res *Result, name string) {
	if res.NetNS == "" {
		if ns, err := r.p.run(ctx, "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", r.names[name]); err == nil && ns != "" {
			res.NetNS = ns
			r.log.Info("pod network", "pod", r.pod, "netns", ns)
		}
	}
	out, err := r.p.run(ctx, "inspect", "--format", "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}", r.names[name])
	if err != nil {
		return
	}
	for _, v := range strings.Fields(out) {
		if !slices.Contains(res.Volumes, v) {
			res.Volumes = append(res.Volumes, v)
			r.log.Info("volume", "container", name, "volume", v)
		}
	}
}

// watch waits for an essential container to exit, or ctx.
func (r *runner) watch(ctx context.Context, res *Result) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		states, err := r.inspect(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		for _, c := range r.task.Containers {
			st, ok := states[c.Name]
			if ok && c.IsEssential() && st.exited() {
				res.StoppedBy, res.ExitCode = c.Name, st.ExitCode
				r.log.Info("essential container exited: stopping the task", "container", c.Name, "exitCode", st.ExitCode)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

type state struct {
	Status   string
	ExitCode int
	Health   string
}

func (s state) exited() bool {
	return s.Status == "exited" || s.Status == "stopped" || s.Status == "dead"
}

// inspect returns the state of every created container, by task name.
func (r *runner) inspect(ctx context.Context) (map[string]state, error) {
	out, err := r.p.run(ctx, "ps", "-a", "--filter", "pod="+r.pod, "--format", "json")
	if err != nil {
		return nil, err
	}
	var list []struct {
		Names    []string
		State    string
		ExitCode int
		Status   string
	}
	if out == "" {
		return map[string]state{}, nil
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("podman ps: %w", err)
	}
	byPodman := map[string]string{}
	for task, pn := range r.names {
		byPodman[pn] = task
	}
	states := map[string]state{}
	for _, e := range list {
		for _, n := range e.Names {
			if task, ok := byPodman[n]; ok {
				health := ""
				switch {
				case strings.Contains(e.Status, "(healthy)"):
					health = "healthy"
				case strings.Contains(e.Status, "(unhealthy)"):
					health = "unhealthy"
				}
				states[task] = state{Status: e.State, ExitCode: e.ExitCode, Health: health}
			}
		}
	}
	return states, nil
}

func (r *runner) finalStates(ctx context.Context) map[string]state {
	st, err := r.inspect(ctx)
	if err != nil {
		return map[string]state{}
	}
	return st
}

// waitDependencies blocks until each dependsOn condition of c holds.
func (r *runner) waitDependencies(ctx context.Context, c *Container) error {
	for _, d := range c.DependsOn {
		dep := r.task.byName(d.ContainerName)
		cond := strings.ToUpper(d.Condition)
		deadline := time.Now().Add(r.healthBudget(dep))
		for {
			states, err := r.inspect(ctx)
			if err != nil {
				return err
			}
			st := states[d.ContainerName]
			done, err := r.conditionMet(ctx, cond, d.ContainerName, st)
			if err != nil {
				return fmt.Errorf("container %q: dependsOn %q %s: %w", c.Name, d.ContainerName, cond, err)
			}
			if done {
				r.log.Info("dependency met", "container", c.Name, "dependsOn", d.ContainerName, "condition", cond)
				break
			}
			if cond == "HEALTHY" && time.Now().After(deadline) {
				return fmt.Errorf("container %q: dependsOn %q HEALTHY: not healthy after %s", c.Name, d.ContainerName, r.healthBudget(dep))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func (r *runner) conditionMet(ctx context.Context, cond, name string, st state) (bool, error) {
	switch cond {
	case "START":
		return st.Status != "" && st.Status != "created" && st.Status != "configured", nil
	case "COMPLETE":
		return st.exited(), nil
	case "SUCCESS":
		if st.exited() && st.ExitCode != 0 {
			return false, fmt.Errorf("it exited with code %d", st.ExitCode)
		}
		return st.exited(), nil
	case "HEALTHY":
		if st.exited() {
			return false, fmt.Errorf("it exited with code %d before it was healthy", st.ExitCode)
		}
		if st.Status != "running" {
			return false, nil
		}
		// No systemd timers here: run the check ourselves.
		_, err := r.p.run(ctx, "healthcheck", "run", r.names[name])
		return err == nil, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// healthBudget is how long a HEALTHY dependency may take, as ECS counts it.
func (r *runner) healthBudget(c *Container) time.Duration {
	hc := c.HealthCheck
	if hc == nil {
		return time.Minute
	}
	interval, timeout, retries := orDefault(hc.Interval, 30), orDefault(hc.Timeout, 5), orDefault(hc.Retries, 3)
	return time.Duration(hc.StartPeriod+(retries+1)*(interval+timeout)) * time.Second
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func (t *Task) byName(name string) *Container {
	for i := range t.Containers {
		if t.Containers[i].Name == name {
			return &t.Containers[i]
		}
	}
	return nil
}

// createArgs translates a container definition into podman run flags.
func (r *runner) createArgs(c *Container) ([]string, error) {
	args := []string{"--stop-timeout", strconv.Itoa(int(r.opts.StopTimeout.Seconds()))}
	if len(c.EntryPoint) > 0 {
		ep, _ := json.Marshal(c.EntryPoint)
		args = append(args, "--entrypoint", string(ep))
	}
	env := map[string]string{}
	var keys []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			keys = append(keys, k)
		}
		env[k] = v
	}
	for _, e := range c.Environment {
		set(e.Name, e.Value)
	}
	for _, s := range c.Secrets {
		v, ok := r.opts.LookupEnv(s.Name)
		if !ok {
			return nil, fmt.Errorf("container %q: secret %s comes from %s, which a local run cannot read: set %s in the environment", c.Name, s.Name, s.ValueFrom, s.Name)
		}
		set(s.Name, v)
	}
	if _, ok := env["TASKGUARD_CONSOLE"]; ok || r.opts.ConsoleURL != "" {
		u := env["TASKGUARD_CONSOLE"]
		if r.opts.ConsoleURL != "" {
			u = r.opts.ConsoleURL
		}
		set("TASKGUARD_CONSOLE", PodURL(u))
	}
	for _, k := range keys {
		args = append(args, "--env", k+"="+env[k])
	}
	for _, v := range c.VolumesFrom {
		opt := r.names[v.SourceContainer]
		if v.ReadOnly {
			opt += ":ro"
		}
		args = append(args, "--volumes-from", opt)
	}
	if lp := c.LinuxParameters; lp != nil {
		if lp.Capabilities != nil {
			for _, cp := range lp.Capabilities.Add {
				args = append(args, "--cap-add", strings.ToUpper(cp))
			}
			for _, cp := range lp.Capabilities.Drop {
				args = append(args, "--cap-drop", strings.ToUpper(cp))
			}
		}
		if lp.InitProcessEnabled {
			args = append(args, "--init")
		}
	}
	for _, u := range c.Ulimits {
		args = append(args, "--ulimit", fmt.Sprintf("%s=%d:%d", u.Name, u.SoftLimit, u.HardLimit))
	}
	if hc := c.HealthCheck; hc != nil && len(hc.Command) > 0 {
		switch hc.Command[0] {
		case "CMD-SHELL":
			args = append(args, "--health-cmd", strings.Join(hc.Command[1:], " "))
		case "CMD":
			b, _ := json.Marshal(hc.Command[1:])
			args = append(args, "--health-cmd", string(b))
		default:
			return nil, fmt.Errorf("container %q: healthCheck command must start with CMD or CMD-SHELL, not %q", c.Name, hc.Command[0])
		}
		args = append(args, "--health-interval", "disable")
		if hc.Timeout > 0 {
			args = append(args, "--health-timeout", fmt.Sprintf("%ds", hc.Timeout))
		}
	}
	if c.WorkingDirectory != "" {
		args = append(args, "--workdir", c.WorkingDirectory)
	}
	if c.User != "" {
		args = append(args, "--user", c.User)
	}
	if r.opts.InsecureRegistry {
		args = append(args, "--tls-verify=false")
	}
	args = append(args, "--pull", "missing", c.Image)
	return append(args, c.Command...), nil
}

// createPod creates the pod with every port mapping published on loopback.
func (r *runner) createPod(ctx context.Context) error {
	args := []string{"pod", "create", "--name", r.pod, "--network", r.opts.Network, "--label", PodLabel + "=" + r.task.Family}
	for _, d := range r.opts.DNS {
		args = append(args, "--dns", d)
	}
	seen := map[string]bool{}
	for _, c := range r.task.Containers {
		for _, p := range c.PortMappings {
			proto := strings.ToLower(p.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			m := fmt.Sprintf("127.0.0.1:%d:%d/%s", p.ContainerPort, p.ContainerPort, proto)
			if !seen[m] {
				seen[m] = true
				args = append(args, "--publish", m)
			}
		}
	}
	if _, err := r.p.run(ctx, args...); err != nil {
		return fmt.Errorf("create pod: %w", err)
	}
	r.log.Info("pod created", "pod", r.pod, "network", r.opts.Network)
	return nil
}

func (r *runner) loadArchives(ctx context.Context) error {
	for name, file := range r.opts.Archives {
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("image archive: %w", err)
		}
		out, err := r.p.run(ctx, "load", "--quiet", "--input", file)
		if err != nil {
			return fmt.Errorf("load image archive %s: %w", file, err)
		}
		loaded := strings.TrimSpace(strings.TrimPrefix(lastLine(out), "Loaded image:"))
		loaded = strings.TrimSpace(strings.TrimPrefix(loaded, "Loaded image(s):"))
		if name != "" && loaded != "" && loaded != name {
			if _, err := r.p.run(ctx, "tag", strings.Split(loaded, ",")[0], name); err != nil {
				return fmt.Errorf("tag %s as %s: %w", loaded, name, err)
			}
		}
		r.log.Info("loaded image archive", "file", file, "image", loaded, "as", name)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (r *runner) followLogs(ctx context.Context, name string) {
	if r.opts.Output == nil {
		return
	}
	cmd := r.p.cmd(context.WithoutCancel(ctx), "logs", "--follow", r.names[name])
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		r.log.Warn("cannot follow logs", "container", name, "err", err)
		return
	}
	r.logs.Add(2)
	go func() {
		defer r.logs.Done()
		_ = cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer r.logs.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			fmt.Fprintf(r.opts.Output, "%s | %s\n", name, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
}

func (r *runner) waitLogs() {
	done := make(chan struct{})
	go func() { r.logs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.log.Warn("container logs did not end in 10s")
	}
}

// stopAll stops the containers as ECS does, dependents first (reverse start
// order: the app before the defender it depends on), each with SIGTERM and
// SIGKILL after the stop timeout; then the pod, whose infra container holds
// the network. Stopping everything at once would take the network away from
// a sidecar still flushing (the defender's last audits).
func (r *runner) stopAll(ctx context.Context) {
	timeout := strconv.Itoa(int(r.opts.StopTimeout.Seconds()))
	for i := len(r.order) - 1; i >= 0; i-- {
		name := r.names[r.order[i].Name]
		if _, err := r.p.run(ctx, "stop", "--ignore", "--time", timeout, name); err != nil {
			r.log.Warn("stop container", "container", r.order[i].Name, "err", err)
		}
	}
	if _, err := r.p.run(ctx, "pod", "stop", "--ignore", "--time", strconv.Itoa(int(r.opts.StopTimeout.Seconds())), r.pod); err != nil {
		r.log.Warn("stop pod", "pod", r.pod, "err", err)
	}
}

// teardown removes the containers with their anonymous volumes, then the pod
// (and with it the infra container and the network namespace).
func (r *runner) teardown(ctx context.Context) error {
	var errs []error
	var names []string
	for _, n := range r.names {
		names = append(names, n)
	}
	if len(names) > 0 {
		args := append([]string{"rm", "--force", "--ignore", "--volumes", "--time", "0"}, names...)
		if _, err := r.p.run(ctx, args...); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := r.p.run(ctx, "pod", "rm", "--force", "--ignore", r.pod); err != nil {
		errs = append(errs, err)
	}
	r.log.Info("pod removed", "pod", r.pod)
	return errors.Join(errs...)
}

// PodURL rewrites a URL on the host's loopback (127.0.0.1, localhost, ::1)
// to HostLoopback, which reaches it from inside the pod. Other URLs are
// returned as they are.
func PodURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return raw
	}
	if p := u.Port(); p != "" {
		u.Host = net.JoinHostPort(HostLoopback, p)
	} else {
		u.Host = HostLoopback
	}
	return u.String()
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func sanitize(s string) string {
	s = unsafeName.ReplaceAllString(s, "-")
	if s == "" {
		return "task"
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
