package localrun

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// maxNproc caps the nproc ulimit: runc on this kind of host refuses to set
// RLIMIT_NPROC at the hard limit itself, and a task needs far fewer.
const maxNproc = 4096

// podman runs the podman binary with a generated containers.conf.
type podman struct {
	bin  string
	conf string // path of the containers.conf
	args []string
}

// ContainersConf returns the containers.conf the runner uses: runc as the
// OCI runtime (crun fails on hybrid cgroup v1/v2 hosts), cgroupfs (no
// systemd needed), file events, and ulimits nofile and nproc set explicitly,
// no higher than this process's hard limits (podman's own default, 1048576
// open files, is refused where the hard limit is lower).
func ContainersConf() (string, error) {
	nofile, nproc, err := hardLimits()
	if err != nil {
		return "", err
	}
	np := min(nproc, maxNproc)
	return fmt.Sprintf(`# written by taskguard task run-local
[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`, nofile, nofile, np, np), nil
}

func newPodman(dir string, opts Options) (*podman, error) {
	bin := opts.Podman
	if bin == "" {
		bin = "podman"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("podman not found (%w): install it, e.g. apt-get install podman runc catatonit slirp4netns", err)
	}
	conf, err := ContainersConf()
	if err != nil {
		return nil, err
	}
	p := &podman{bin: path, conf: filepath.Join(dir, "containers.conf")}
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write containers.conf: %w", err)
	}
	if opts.Root != "" {
		p.args = append(p.args, "--root", opts.Root)
	}
	if opts.RunRoot != "" {
		p.args = append(p.args, "--runroot", opts.RunRoot)
	}
	return p, nil
}

func (p *podman) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, p.bin, append(append([]string(nil), p.args...), args...)...)
	c.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	return c
}

// run runs podman and returns its trimmed stdout, or an error with stderr.
func (p *podman) run(ctx context.Context, args ...string) (string, error) {
	c := p.cmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
