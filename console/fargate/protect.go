package fargate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The protected task's fixed names and paths.
const (
	// DefenderContainerName is the name of the appended sidecar container.
	DefenderContainerName = "taskguard-defender"
	// DefenderVolume is the directory the defender image declares as a VOLUME;
	// app containers see it through volumesFrom.
	DefenderVolume = "/var/lib/taskguard"
	// LauncherPath is the static defender binary that prefixes every app
	// container's argv.
	LauncherPath = DefenderVolume + "/defender"
	// DefaultDefenderImage is used when Options.DefenderImage is empty.
	DefaultDefenderImage = "ghcr.io/taskguard/defender:latest"
	// defenderLabel marks the appended container as taskguard's own, so that
	// protecting again replaces it instead of nesting.
	defenderLabel = "io.taskguard.defender"
)

// Environment variables the transform sets.
const (
	EnvContainer  = "TASKGUARD_CONTAINER"
	EnvImage      = "TASKGUARD_IMAGE"
	EnvTask       = "TASKGUARD_TASK"
	EnvConsole    = "TASKGUARD_CONSOLE"
	EnvAgentToken = "TASKGUARD_AGENT_TOKEN"
)

// launcherPrefix is what every protected app container's entryPoint starts with.
var launcherPrefix = []string{LauncherPath, "entrypoint", "--"}

// Options configure Protect.
type Options struct {
	// ConsoleAddr is the console's host[:port] (or https:// URL) the defender
	// reports to. Empty: the defender runs without a console.
	ConsoleAddr string
	// DefenderImage is the sidecar's image; empty means DefaultDefenderImage.
	DefenderImage string
	// AgentToken is the agent credential, put in the defender's environment.
	// It may only fetch policy and post audits.
	AgentToken string
	// AgentTokenSecretARN is a Secrets Manager or SSM parameter ARN holding the
	// agent credential; it is passed as an ECS secrets entry instead of a value.
	AgentTokenSecretARN string
	// ExtractEntrypoint reads ENTRYPOINT and CMD from the image config when a
	// container has no entryPoint.
	ExtractEntrypoint bool
	// Images fetches image configs for ExtractEntrypoint; nil means a registry
	// client with the docker config's credentials (RegistryImages).
	Images ImageConfigFetcher
	// WAFPorts are external ports the defender listens on for WAF rules that
	// match this task; each becomes a portMappings entry of the defender.
	WAFPorts []uint16
	// DefenderHealthCheck gives the defender a health check, and app containers
	// then wait for it to be HEALTHY instead of START.
	DefenderHealthCheck bool
}

// ImageConfigFetcher reads an image's ENTRYPOINT and CMD.
type ImageConfigFetcher interface {
	ImageConfig(ctx context.Context, ref, platform string) (ImageConfig, error)
}

// ImageConfig is the part of an image config the transform needs.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
}

// ProtectJSON parses a task definition, protects it and returns it as
// indented JSON.
func ProtectJSON(ctx context.Context, task []byte, opts Options) ([]byte, error) {
	td, err := Parse(task)
	if err != nil {
		return nil, err
	}
	if err := Protect(ctx, td, opts); err != nil {
		return nil, err
	}
	return td.Indented()
}

// Protect embeds the defender into td, in place. It is idempotent: a task
// protected before is re-protected cleanly, never nested.
func Protect(ctx context.Context, td *TaskDefinition, opts Options) error {
	if opts.ConsoleAddr != "" && opts.AgentToken == "" && opts.AgentTokenSecretARN == "" {
		return errors.New("a defender that reports to a console needs an agent credential: give an agent token secret ARN or a token")
	}
	if opts.AgentToken != "" && opts.AgentTokenSecretARN != "" {
		return errors.New("give the agent credential either as a token or as a secret ARN, not both")
	}
	if opts.AgentTokenSecretARN != "" && !strings.HasPrefix(opts.AgentTokenSecretARN, "arn:") {
		return fmt.Errorf("agent token secret %q is not an ARN (arn:aws:secretsmanager:... or arn:aws:ssm:...)", opts.AgentTokenSecretARN)
	}
	if err := td.removeDefender(); err != nil {
		return err
	}
	family := td.Family()
	platform := td.platform()
	for _, c := range td.containers {
		if err := c.protect(ctx, family, platform, opts); err != nil {
			return err
		}
	}
	def, err := td.defenderContainer(opts)
	if err != nil {
		return err
	}
	td.containers = append(td.containers, def)
	return nil
}

// removeDefender drops a defender container added by an earlier Protect. A
// container that merely has the reserved name is an error.
func (td *TaskDefinition) removeDefender() error {
	for i, c := range td.containers {
		if c.Name() != DefenderContainerName {
			continue
		}
		var labels map[string]string
		if _, err := c.obj.get("dockerLabels", &labels); err != nil || labels[defenderLabel] != "true" {
			return invalid("container name %q is reserved for the taskguard defender; rename that container", DefenderContainerName)
		}
		td.containers = slices.Delete(td.containers, i, i+1)
		return nil
	}
	return nil
}

// platform returns the OCI platform from runtimePlatform (Fargate's default is linux/amd64).
func (td *TaskDefinition) platform() string {
	var rp struct {
		CPUArchitecture string `json:"cpuArchitecture"`
	}
	_, _ = td.obj.get("runtimePlatform", &rp)
	if strings.EqualFold(rp.CPUArchitecture, "ARM64") {
		return "linux/arm64"
	}
	return "linux/amd64"
}

func (c *Container) protect(ctx context.Context, family, platform string, opts Options) error {
	name := c.Name()
	entry := c.EntryPoint()
	wasProtected := hasLauncherPrefix(entry)
	if wasProtected {
		entry = entry[len(launcherPrefix):]
	}
	if len(entry) == 0 && !wasProtected {
		if !opts.ExtractEntrypoint {
			return invalid("container %q has no entryPoint: add the image's ENTRYPOINT to the task definition "+
				`(a default such as "entryPoint": ["/bin/sh", "-c"] when the image has none), or ask to extract it from the image (extractEntrypoint=true, --extract-entrypoint)`, name)
		}
		if err := c.adoptImageEntrypoint(ctx, platform, opts.Images); err != nil {
			return err
		}
		entry = c.EntryPoint()
	}
	if err := c.obj.set("entryPoint", slices.Concat(launcherPrefix, entry)); err != nil {
		return err
	}
	if err := c.addVolumesFrom(); err != nil {
		return err
	}
	condition := "START"
	if opts.DefenderHealthCheck {
		condition = "HEALTHY"
	}
	if err := c.addDependsOn(condition); err != nil {
		return err
	}
	if err := c.addCapability("SYS_PTRACE"); err != nil {
		return err
	}
	return c.setEnv(map[string]string{EnvContainer: name, EnvImage: c.Image(), EnvTask: family})
}

func hasLauncherPrefix(entry []string) bool {
	return len(entry) >= len(launcherPrefix) && slices.Equal(entry[:len(launcherPrefix)], launcherPrefix)
}

// adoptImageEntrypoint writes the image's ENTRYPOINT into the container. An
// entryPoint set in a task definition makes the runtime drop the image's CMD,
// so the image's CMD moves into command unless the task sets one.
func (c *Container) adoptImageEntrypoint(ctx context.Context, platform string, images ImageConfigFetcher) error {
	if images == nil {
		images = RegistryImages{}
	}
	cfg, err := images.ImageConfig(ctx, c.Image(), platform)
	if err != nil {
		return fmt.Errorf("container %q: read ENTRYPOINT from image %s: %w", c.Name(), c.Image(), err)
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 && len(c.Command()) == 0 {
		return invalid("container %q: image %s has neither ENTRYPOINT nor CMD; add an entryPoint to the task definition", c.Name(), c.Image())
	}
	if err := c.obj.set("entryPoint", nonNil(cfg.Entrypoint)); err != nil {
		return err
	}
	if c.obj.isNull("command") && len(cfg.Cmd) > 0 {
		return c.obj.set("command", cfg.Cmd)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type volumeFrom struct {
	SourceContainer string `json:"sourceContainer"`
	ReadOnly        bool   `json:"readOnly"`
}

func (c *Container) addVolumesFrom() error {
	var list []json.RawMessage
	if _, err := c.obj.get("volumesFrom", &list); err != nil {
		return invalid("container %q: %v", c.Name(), err)
	}
	list = slices.DeleteFunc(list, func(raw json.RawMessage) bool {
		var v volumeFrom
		return json.Unmarshal(raw, &v) == nil && v.SourceContainer == DefenderContainerName
	})
	ours, _ := json.Marshal(volumeFrom{SourceContainer: DefenderContainerName, ReadOnly: true})
	return c.obj.set("volumesFrom", append(list, ours))
}

type dependency struct {
	ContainerName string `json:"containerName"`
	Condition     string `json:"condition"`
}

func (c *Container) addDependsOn(condition string) error {
	var list []json.RawMessage
	if _, err := c.obj.get("dependsOn", &list); err != nil {
		return invalid("container %q: %v", c.Name(), err)
	}
	list = slices.DeleteFunc(list, func(raw json.RawMessage) bool {
		var d dependency
		return json.Unmarshal(raw, &d) == nil && d.ContainerName == DefenderContainerName
	})
	ours, _ := json.Marshal(dependency{ContainerName: DefenderContainerName, Condition: condition})
	return c.obj.set("dependsOn", append(list, ours))
}

// addCapability adds a Linux capability to linuxParameters.capabilities.add,
// keeping every other linuxParameters field.
func (c *Container) addCapability(capability string) error {
	lp := newObject()
	if !c.obj.isNull("linuxParameters") {
		var err error
		if lp, err = parseObject(c.obj.vals["linuxParameters"]); err != nil {
			return invalid("container %q: linuxParameters: %v", c.Name(), err)
		}
	}
	caps := newObject()
	if !lp.isNull("capabilities") {
		var err error
		if caps, err = parseObject(lp.vals["capabilities"]); err != nil {
			return invalid("container %q: linuxParameters.capabilities: %v", c.Name(), err)
		}
	}
	var add []string
	if _, err := caps.get("add", &add); err != nil {
		return invalid("container %q: linuxParameters.capabilities: %v", c.Name(), err)
	}
	if !slices.ContainsFunc(add, func(s string) bool { return strings.EqualFold(strings.TrimPrefix(s, "CAP_"), capability) }) {
		add = append(add, capability)
	}
	if err := caps.set("add", add); err != nil {
		return err
	}
	if err := lp.set("capabilities", caps); err != nil {
		return err
	}
	return c.obj.set("linuxParameters", lp)
}

type keyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// setEnv sets environment variables, replacing entries of the same name and
// keeping the others in order.
func (c *Container) setEnv(vars map[string]string) error {
	var list []json.RawMessage
	if _, err := c.obj.get("environment", &list); err != nil {
		return invalid("container %q: %v", c.Name(), err)
	}
	list = slices.DeleteFunc(list, func(raw json.RawMessage) bool {
		var kv keyValue
		if json.Unmarshal(raw, &kv) != nil {
			return false
		}
		_, ours := vars[kv.Name]
		return ours
	})
	for _, name := range sortedKeys(vars) {
		if vars[name] == "" {
			continue
		}
		b, _ := json.Marshal(keyValue{Name: name, Value: vars[name]})
		list = append(list, b)
	}
	return c.obj.set("environment", list)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// defenderContainer builds the appended sidecar.
func (td *TaskDefinition) defenderContainer(opts Options) (*Container, error) {
	image := opts.DefenderImage
	if image == "" {
		image = DefaultDefenderImage
	}
	c := &Container{obj: newObject()}
	var errs []error
	set := func(k string, v any) { errs = append(errs, c.obj.set(k, v)) }
	set("name", DefenderContainerName)
	set("image", image)
	set("essential", true)
	if len(opts.WAFPorts) > 0 {
		ports := slices.Clone(opts.WAFPorts)
		slices.Sort(ports)
		ports = slices.Compact(ports)
		var pms []map[string]any
		for _, p := range ports {
			pms = append(pms, map[string]any{"containerPort": p, "protocol": "tcp"})
		}
		set("portMappings", pms)
	}
	env := []keyValue{{Name: EnvTask, Value: td.Family()}}
	if opts.ConsoleAddr != "" {
		env = append(env, keyValue{Name: EnvConsole, Value: consoleURL(opts.ConsoleAddr)})
	}
	if opts.AgentToken != "" {
		env = append(env, keyValue{Name: EnvAgentToken, Value: opts.AgentToken})
	}
	set("environment", env)
	if opts.AgentTokenSecretARN != "" {
		set("secrets", []map[string]string{{"name": EnvAgentToken, "valueFrom": opts.AgentTokenSecretARN}})
	}
	if opts.DefenderHealthCheck {
		set("healthCheck", map[string]any{
			"command":     []string{"CMD", LauncherPath, "health"},
			"interval":    10,
			"timeout":     5,
			"retries":     3,
			"startPeriod": 10,
		})
	}
	if lc := td.firstLogConfiguration(); lc != nil {
		c.obj.setRaw("logConfiguration", lc)
	}
	set("dockerLabels", map[string]string{defenderLabel: "true"})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// consoleURL turns a bare host[:port] into an https URL.
func consoleURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "https://" + addr
}

// firstLogConfiguration returns the first app container's logConfiguration,
// so the defender's logs go where the task's logs already go.
func (td *TaskDefinition) firstLogConfiguration() json.RawMessage {
	for _, c := range td.containers {
		if !c.obj.isNull("logConfiguration") {
			return c.obj.vals["logConfiguration"]
		}
	}
	return nil
}
