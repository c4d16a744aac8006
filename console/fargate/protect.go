package fargate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
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
	// ptraceLabel on the defender lists the containers whose SYS_PTRACE
	// taskguard added (not the user), so that leaving one out later takes
	// back exactly what was added.
	ptraceLabel = "io.taskguard.added-sys-ptrace"
)

// Environment variables the transform sets (see the contract in docs/protect.md).
const (
	EnvContainer  = "TASKGUARD_CONTAINER"
	EnvImage      = "TASKGUARD_IMAGE"
	EnvTask       = "TASKGUARD_TASK"
	EnvConsole    = "TASKGUARD_CONSOLE"
	EnvAgentToken = "TASKGUARD_AGENT_TOKEN"
	// EnvConsoleCAPEM holds the PEM of the certificate(s) the defender
	// trusts for the console, beside the system roots.
	EnvConsoleCAPEM = "TASKGUARD_CONSOLE_CA_PEM"
	// EnvFailClosed=1 in an app container: the launcher never starts the app
	// unprotected.
	EnvFailClosed = "TASKGUARD_FAIL_CLOSED"
)

// Platforms of the defender image.
const (
	PlatformAMD64 = "linux/amd64"
	PlatformARM64 = "linux/arm64"
)

// The defender's memoryReservation in MiB: its measured peak resident set
// (VmHWM; docs/protect.md, "Memory") with headroom. The sidecar serving a
// runtime policy peaked at 20 MiB; with a WAF rule enabling every protection
// (the Coraza rule sets loaded) it held 78 MiB idle and peaked at 95 MiB
// under 800 attack requests.
const (
	DefaultDefenderMemoryReservation = 32
	DefenderMemoryReservationWAF     = 128
)

// launcherPrefix is what every protected app container's entryPoint starts with.
var launcherPrefix = []string{LauncherPath, "entrypoint", "--"}

// Options configure Protect.
type Options struct {
	// ConsoleAddr is the console the defender reports to: host, host:port or
	// an http(s):// URL (see ConsoleURL; a bare address means https). Empty:
	// the defender runs without a console.
	ConsoleAddr string
	// ConsoleCAPEM is the PEM of the certificate(s) the defender must trust
	// to verify the console (its self-signed certificate or private CA);
	// written as TASKGUARD_CONSOLE_CA_PEM. Empty for a publicly trusted one.
	ConsoleCAPEM string
	// DefenderImage is the sidecar's image; empty means DefaultDefenderImage.
	DefenderImage string
	// DefenderPlatforms are the platforms the defender image carries
	// ("linux/amd64", "linux/arm64"); empty means linux/amd64 only. A task
	// whose runtimePlatform is not among them is refused.
	DefenderPlatforms []string
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
	// Include names containers to protect even though they look like
	// infrastructure (a FireLens router, the proxy container, a SkipImages
	// match).
	Include []string
	// Exclude names containers to leave as they are.
	Exclude []string
	// SkipImages are image patterns (path.Match globs over the whole
	// reference, or over the reference without its tag/digest) whose
	// containers are left as they are.
	SkipImages []string
	// FailClosed writes TASKGUARD_FAIL_CLOSED=1 into every protected
	// container: the app never starts without supervision and policy.
	FailClosed bool
	// DefenderMemoryReservation is the defender's memoryReservation in MiB;
	// 0 means DefaultDefenderMemoryReservation, or DefenderMemoryReservationWAF
	// when WAFPorts are given.
	DefenderMemoryReservation int
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

// Report says what Protect did.
type Report struct {
	// Protected are the containers that now start under the launcher.
	Protected []string
	// Skipped are the containers left as they were, with the reason.
	Skipped []Skipped
	// Notes are things the caller should know: choices made for them.
	Notes []string
}

// Skipped is a container Protect left alone.
type Skipped struct {
	Name, Reason string
}

// String is the report in one line per fact, for a CLI's stderr.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "protected: %s\n", strings.Join(r.Protected, ", "))
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "not protected: %s: %s\n", s.Name, s.Reason)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

// ProtectJSON parses a task definition, protects it and returns it as
// indented JSON.
func ProtectJSON(ctx context.Context, task []byte, opts Options) ([]byte, error) {
	out, _, err := ProtectJSONReport(ctx, task, opts)
	return out, err
}

// ProtectJSONReport is ProtectJSON that also says which containers were
// protected and why the others were not.
func ProtectJSONReport(ctx context.Context, task []byte, opts Options) ([]byte, Report, error) {
	td, err := Parse(task)
	if err != nil {
		return nil, Report{}, err
	}
	rep, err := ProtectReport(ctx, td, opts)
	if err != nil {
		return nil, Report{}, err
	}
	out, err := td.Indented()
	return out, rep, err
}

// Protect embeds the defender into td, in place. It is idempotent: a task
// protected before is re-protected cleanly, never nested.
func Protect(ctx context.Context, td *TaskDefinition, opts Options) error {
	_, err := ProtectReport(ctx, td, opts)
	return err
}

// ProtectReport is Protect that reports what it did. The result is checked
// before it is returned: it fits the ECS RegisterTaskDefinition input model
// and its containers can start in an order (no dependency cycle).
func ProtectReport(ctx context.Context, td *TaskDefinition, opts Options) (Report, error) {
	var rep Report
	if opts.ConsoleAddr != "" && opts.AgentToken == "" && opts.AgentTokenSecretARN == "" {
		return rep, errors.New("a defender that reports to a console needs an agent credential: give an agent token secret ARN or a token")
	}
	if opts.AgentToken != "" && opts.AgentTokenSecretARN != "" {
		return rep, errors.New("give the agent credential either as a token or as a secret ARN, not both")
	}
	if opts.AgentTokenSecretARN != "" && !strings.HasPrefix(opts.AgentTokenSecretARN, "arn:") {
		return rep, fmt.Errorf("agent token secret %q is not an ARN (arn:aws:secretsmanager:... or arn:aws:ssm:...)", opts.AgentTokenSecretARN)
	}
	console := ""
	if opts.ConsoleAddr != "" {
		var err error
		if console, err = ConsoleURL(opts.ConsoleAddr, false); err != nil {
			return rep, err
		}
	}
	addedPtrace, err := td.removeDefender()
	if err != nil {
		return rep, err
	}
	platform, err := td.platform(opts.DefenderPlatforms, opts.DefenderImage)
	if err != nil {
		return rep, err
	}
	chosen, skipped, err := td.selectContainers(opts)
	if err != nil {
		return rep, err
	}
	rep.Skipped = skipped
	family := td.Family()
	var ptraceAdded []string
	for _, c := range td.containers {
		if !chosen[c.Name()] {
			if err := c.unprotect(addedPtrace[c.Name()]); err != nil {
				return rep, err
			}
			continue
		}
		added, err := c.protect(ctx, family, platform, opts)
		if err != nil {
			return rep, err
		}
		if added || addedPtrace[c.Name()] {
			ptraceAdded = append(ptraceAdded, c.Name())
		}
		rep.Protected = append(rep.Protected, c.Name())
	}
	def, notes, err := td.defenderContainer(opts, console, chosen, ptraceAdded)
	if err != nil {
		return rep, err
	}
	rep.Notes = append(rep.Notes, notes...)
	td.containers = append(td.containers, def)
	if err := td.StartOrder(); err != nil {
		return rep, err
	}
	if err := td.Validate(); err != nil {
		return rep, err
	}
	return rep, nil
}

// removeDefender drops a defender container added by an earlier Protect and
// returns the containers it recorded as given SYS_PTRACE by taskguard. A
// container that merely has the reserved name is an error.
func (td *TaskDefinition) removeDefender() (map[string]bool, error) {
	for i, c := range td.containers {
		if c.Name() != DefenderContainerName {
			continue
		}
		var labels map[string]string
		if _, err := c.obj.get("dockerLabels", &labels); err != nil || labels[defenderLabel] != "true" {
			return nil, invalid("container name %q is reserved for the taskguard defender; rename that container", DefenderContainerName)
		}
		td.containers = slices.Delete(td.containers, i, i+1)
		added := map[string]bool{}
		for _, n := range strings.Split(labels[ptraceLabel], ",") {
			if n != "" {
				added[n] = true
			}
		}
		return added, nil
	}
	return nil, nil
}

// platform returns the OCI platform of runtimePlatform (Fargate's default is
// linux/amd64), refusing Windows and an architecture the defender image
// does not carry.
func (td *TaskDefinition) platform(defenderPlatforms []string, image string) (string, error) {
	var rp struct {
		CPUArchitecture       string `json:"cpuArchitecture"`
		OperatingSystemFamily string `json:"operatingSystemFamily"`
	}
	if _, err := td.obj.get("runtimePlatform", &rp); err != nil {
		return "", invalid("%v", err)
	}
	if os := rp.OperatingSystemFamily; os != "" && !strings.EqualFold(os, "LINUX") {
		return "", invalid("runtimePlatform.operatingSystemFamily is %s: taskguard protects Linux tasks only (the launcher supervises Linux processes with ptrace and seccomp); Windows task definitions cannot be protected", os)
	}
	platform := PlatformAMD64
	switch arch := strings.ToUpper(rp.CPUArchitecture); arch {
	case "", "X86_64":
	case "ARM64":
		platform = PlatformARM64
	default:
		return "", invalid("runtimePlatform.cpuArchitecture %q: ECS knows X86_64 and ARM64", rp.CPUArchitecture)
	}
	if len(defenderPlatforms) == 0 {
		defenderPlatforms = []string{PlatformAMD64}
	}
	if !slices.Contains(defenderPlatforms, platform) {
		if image == "" {
			image = DefaultDefenderImage
		}
		return "", invalid("runtimePlatform.cpuArchitecture is %s, but the defender image %s is declared for %s only, so the task would fail to start: "+
			"push a defender image that carries %s and declare it (--defender-platforms %s, defenderPlatforms=%s), or run the task on X86_64",
			rp.CPUArchitecture, image, strings.Join(defenderPlatforms, ", "), platform,
			strings.Join(append(slices.Clone(defenderPlatforms), platform), ","), strings.Join(append(slices.Clone(defenderPlatforms), platform), ","))
	}
	return platform, nil
}

// selectContainers decides which containers run under the launcher. By
// default every container does except infrastructure: a FireLens log router,
// the container named by proxyConfiguration (App Mesh / Service Connect
// Envoy) and images matching SkipImages. Include and Exclude override by name.
func (td *TaskDefinition) selectContainers(opts Options) (map[string]bool, []Skipped, error) {
	names := map[string]bool{}
	for _, c := range td.containers {
		names[c.Name()] = true
	}
	for _, n := range slices.Concat(opts.Include, opts.Exclude) {
		if !names[n] {
			return nil, nil, invalid("container %q is named to include or exclude, but the task has no such container (it has %s)", n, strings.Join(td.containerNames(), ", "))
		}
	}
	for _, n := range opts.Include {
		if slices.Contains(opts.Exclude, n) {
			return nil, nil, invalid("container %q is both included and excluded", n)
		}
	}
	for _, p := range opts.SkipImages {
		if _, err := path.Match(p, ""); err != nil {
			return nil, nil, invalid("image pattern %q: %v", p, err)
		}
	}
	proxy := td.proxyContainer()
	chosen := map[string]bool{}
	var skipped []Skipped
	for _, c := range td.containers {
		name := c.Name()
		reason := ""
		switch {
		case slices.Contains(opts.Exclude, name):
			reason = "excluded by name"
		case slices.Contains(opts.Include, name):
		case !c.obj.isNull("firelensConfiguration"):
			reason = "FireLens log router (firelensConfiguration); include it by name to protect it"
		case name == proxy:
			reason = "the proxyConfiguration container (App Mesh / Service Connect proxy); include it by name to protect it"
		default:
			if p := matchImage(opts.SkipImages, c.Image()); p != "" {
				reason = fmt.Sprintf("image matches the skipped image pattern %q", p)
			}
		}
		if reason != "" {
			skipped = append(skipped, Skipped{Name: name, Reason: reason})
			continue
		}
		chosen[name] = true
	}
	if len(chosen) == 0 {
		return nil, nil, invalid("no container is left to protect (%s): include an app container by name", describeSkipped(skipped))
	}
	return chosen, skipped, nil
}

func describeSkipped(s []Skipped) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, x.Name+": "+x.Reason)
	}
	return strings.Join(parts, "; ")
}

func (td *TaskDefinition) containerNames() []string {
	var out []string
	for _, c := range td.containers {
		out = append(out, c.Name())
	}
	return out
}

// proxyContainer is proxyConfiguration.containerName, or "".
func (td *TaskDefinition) proxyContainer() string {
	var pc struct {
		ContainerName string `json:"containerName"`
	}
	_, _ = td.obj.get("proxyConfiguration", &pc)
	return pc.ContainerName
}

// matchImage returns the first pattern that matches ref, whole or without
// its tag or digest.
func matchImage(patterns []string, ref string) string {
	bare := ref
	if i := strings.Index(bare, "@"); i >= 0 {
		bare = bare[:i]
	}
	if i := strings.LastIndex(bare, ":"); i > strings.LastIndex(bare, "/") {
		bare = bare[:i]
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, ref); ok {
			return p
		}
		if ok, _ := path.Match(p, bare); ok {
			return p
		}
	}
	return ""
}

// protect puts the container under the launcher; added reports whether
// SYS_PTRACE was added (rather than already there).
func (c *Container) protect(ctx context.Context, family, platform string, opts Options) (added bool, err error) {
	name := c.Name()
	entry := c.EntryPoint()
	wasProtected := hasLauncherPrefix(entry)
	if wasProtected {
		entry = entry[len(launcherPrefix):]
	}
	if len(entry) == 0 && !wasProtected {
		if !opts.ExtractEntrypoint {
			return false, invalid("container %q has no entryPoint: add the image's ENTRYPOINT to the task definition "+
				`(a default such as "entryPoint": ["/bin/sh", "-c"] when the image has none), ask to extract it from the image (extractEntrypoint=true, --extract-entrypoint), or leave the container out (exclude=%s, --exclude %s)`, name, name, name)
		}
		if err := c.adoptImageEntrypoint(ctx, platform, opts.Images); err != nil {
			return false, err
		}
		entry = c.EntryPoint()
	}
	if err := c.obj.set("entryPoint", slices.Concat(launcherPrefix, entry)); err != nil {
		return false, err
	}
	if err := c.addVolumesFrom(); err != nil {
		return false, err
	}
	condition := "START"
	if opts.DefenderHealthCheck {
		condition = "HEALTHY"
	}
	if err := c.addDependsOn(condition); err != nil {
		return false, err
	}
	if added, err = c.addCapability("SYS_PTRACE"); err != nil {
		return false, err
	}
	failClosed := ""
	if opts.FailClosed {
		failClosed = "1"
	}
	return added, c.setEnv(map[string]string{EnvContainer: name, EnvImage: c.Image(), EnvTask: family, EnvFailClosed: failClosed})
}

// unprotect undoes an earlier protection of a container that is now left
// out: the launcher prefix, the defender's volumesFrom and dependsOn entries
// and taskguard's environment go, and SYS_PTRACE when taskguard added it
// (ptraceAdded). A container never protected is not touched at all.
func (c *Container) unprotect(ptraceAdded bool) error {
	entry := c.EntryPoint()
	if !hasLauncherPrefix(entry) {
		return nil
	}
	if err := c.obj.set("entryPoint", nonNil(entry[len(launcherPrefix):])); err != nil {
		return err
	}
	for _, f := range []struct {
		key  string
		ours func(json.RawMessage) bool
	}{
		{"volumesFrom", func(raw json.RawMessage) bool {
			var v volumeFrom
			return json.Unmarshal(raw, &v) == nil && v.SourceContainer == DefenderContainerName
		}},
		{"dependsOn", func(raw json.RawMessage) bool {
			var d dependency
			return json.Unmarshal(raw, &d) == nil && d.ContainerName == DefenderContainerName
		}},
		{"environment", func(raw json.RawMessage) bool {
			var kv keyValue
			return json.Unmarshal(raw, &kv) == nil && slices.Contains([]string{EnvContainer, EnvImage, EnvTask, EnvFailClosed}, kv.Name)
		}},
	} {
		var list []json.RawMessage
		if _, err := c.obj.get(f.key, &list); err != nil {
			return invalid("container %q: %v", c.Name(), err)
		}
		kept := slices.DeleteFunc(slices.Clone(list), f.ours)
		switch {
		case len(kept) == len(list):
		case len(kept) == 0:
			c.obj.del(f.key)
		default:
			if err := c.obj.set(f.key, kept); err != nil {
				return err
			}
		}
	}
	if ptraceAdded {
		return c.removeCapability("SYS_PTRACE")
	}
	return nil
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
func (c *Container) addCapability(capability string) (bool, error) {
	lp, caps, add, err := c.capabilities()
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(add, func(s string) bool { return strings.EqualFold(strings.TrimPrefix(s, "CAP_"), capability) }) {
		return false, nil
	}
	return true, c.setCapabilities(lp, caps, append(add, capability))
}

// removeCapability takes capability out of linuxParameters.capabilities.add,
// and drops what that leaves empty.
func (c *Container) removeCapability(capability string) error {
	lp, caps, add, err := c.capabilities()
	if err != nil {
		return err
	}
	add = slices.DeleteFunc(add, func(s string) bool { return strings.EqualFold(strings.TrimPrefix(s, "CAP_"), capability) })
	if len(add) > 0 {
		return c.setCapabilities(lp, caps, add)
	}
	caps.del("add")
	if len(caps.keys) > 0 {
		if err := lp.set("capabilities", caps); err != nil {
			return err
		}
	} else {
		lp.del("capabilities")
	}
	if len(lp.keys) > 0 {
		return c.obj.set("linuxParameters", lp)
	}
	c.obj.del("linuxParameters")
	return nil
}

func (c *Container) setCapabilities(lp, caps *object, add []string) error {
	if err := caps.set("add", add); err != nil {
		return err
	}
	if err := lp.set("capabilities", caps); err != nil {
		return err
	}
	return c.obj.set("linuxParameters", lp)
}

// capabilities reads linuxParameters, its capabilities and their add list.
func (c *Container) capabilities() (lp, caps *object, add []string, err error) {
	lp = newObject()
	if !c.obj.isNull("linuxParameters") {
		if lp, err = parseObject(c.obj.vals["linuxParameters"]); err != nil {
			return nil, nil, nil, invalid("container %q: linuxParameters: %v", c.Name(), err)
		}
	}
	caps = newObject()
	if !lp.isNull("capabilities") {
		if caps, err = parseObject(lp.vals["capabilities"]); err != nil {
			return nil, nil, nil, invalid("container %q: linuxParameters.capabilities: %v", c.Name(), err)
		}
	}
	if _, err := caps.get("add", &add); err != nil {
		return nil, nil, nil, invalid("container %q: linuxParameters.capabilities: %v", c.Name(), err)
	}
	return lp, caps, add, nil
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

// defenderContainer builds the appended sidecar; chosen are the containers
// that run under the launcher. The notes tell the caller about choices made.
func (td *TaskDefinition) defenderContainer(opts Options, console string, chosen map[string]bool, ptraceAdded []string) (*Container, []string, error) {
	image := opts.DefenderImage
	if image == "" {
		image = DefaultDefenderImage
	}
	var notes []string
	c := &Container{obj: newObject()}
	var errs []error
	set := func(k string, v any) { errs = append(errs, c.obj.set(k, v)) }
	set("name", DefenderContainerName)
	set("image", image)
	set("essential", true)
	want := opts.DefenderMemoryReservation
	if want <= 0 {
		want = DefaultDefenderMemoryReservation
		if len(opts.WAFPorts) > 0 {
			want = DefenderMemoryReservationWAF
		}
	}
	reservation, note, err := td.defenderMemory(want)
	if err != nil {
		return nil, nil, err
	}
	if note != "" {
		notes = append(notes, note)
	}
	set("memoryReservation", reservation)
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
	if console != "" {
		env = append(env, keyValue{Name: EnvConsole, Value: console})
	}
	if opts.ConsoleCAPEM != "" {
		env = append(env, keyValue{Name: EnvConsoleCAPEM, Value: opts.ConsoleCAPEM})
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
	lc, note := td.defenderLogConfiguration(chosen)
	if lc != nil {
		c.obj.setRaw("logConfiguration", lc)
	}
	if note != "" {
		notes = append(notes, note)
	}
	labels := map[string]string{defenderLabel: "true"}
	if len(ptraceAdded) > 0 {
		labels[ptraceLabel] = strings.Join(ptraceAdded, ",")
	}
	set("dockerLabels", labels)
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return c, notes, nil
}

// ConsoleURL spells the console address the defender gets: a bare host,
// host:port or [IPv6]:port becomes https://… (http://… when plainHTTP, the
// console serving --insecure-http); an http:// or https:// URL is kept as
// given, without a trailing slash. Paths, queries and user info are refused.
func ConsoleURL(addr string, plainHTTP bool) (string, error) {
	addr = strings.TrimSpace(addr)
	raw := addr
	if !strings.Contains(addr, "://") {
		scheme := "https://"
		if plainHTTP {
			scheme = "http://"
		}
		raw = scheme + addr
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("console address %q: give host, host:port or https://host:port", addr)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("console address %q: the scheme must be https:// or http://", addr)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("console address %q: give only the scheme, host and port (no path, query or user)", addr)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("console address %q: port %q is not 1-65535", addr, p)
		}
	}
	return u.Scheme + "://" + u.Host, nil
}

type logConfiguration struct {
	LogDriver string            `json:"logDriver"`
	Options   map[string]string `json:"options"`
}

// defenderLogConfiguration picks where the defender's logs go: where the
// protected containers' logs go (else any container's). When that is
// FireLens and the router waits for the defender (it runs under the launcher
// itself, or waits for a container that does), the defender logs with
// awslogs to the task's log group instead: ECS makes every awsfirelens
// container wait for the router, and neither may wait for the other.
func (td *TaskDefinition) defenderLogConfiguration(chosen map[string]bool) (json.RawMessage, string) {
	var first json.RawMessage
	for _, pass := range []bool{true, false} {
		for _, c := range td.containers {
			if chosen[c.Name()] == pass && !c.obj.isNull("logConfiguration") {
				first = c.obj.vals["logConfiguration"]
				break
			}
		}
		if first != nil {
			break
		}
	}
	if first == nil {
		return nil, ""
	}
	var lc logConfiguration
	if json.Unmarshal(first, &lc) != nil || lc.LogDriver != "awsfirelens" {
		return first, ""
	}
	router := td.fireLensRouter()
	if router == nil {
		return first, ""
	}
	if !td.waitsForAny(router.Name(), chosen) {
		return first, ""
	}
	// The router waits for the defender: the defender must not wait for it.
	for _, c := range slices.Concat([]*Container{router}, td.containers) {
		var l logConfiguration
		if _, err := c.obj.get("logConfiguration", &l); err == nil && l.LogDriver == "awslogs" && l.Options["awslogs-group"] != "" {
			return c.obj.vals["logConfiguration"], fmt.Sprintf("the defender logs with awslogs to %s (as container %q does), not through FireLens: the FireLens router %q starts after the defender (it runs under the launcher, or waits for a container that does)",
				l.Options["awslogs-group"], c.Name(), router.Name())
		}
	}
	return nil, fmt.Sprintf("the defender has no logConfiguration: the FireLens router %q starts after the defender (it runs under the launcher, or waits for a container that does), and no container logs with awslogs to copy from; add an awslogs logConfiguration to the router to get the defender's logs", router.Name())
}

// fireLensRouter is the container with firelensConfiguration, or nil.
func (td *TaskDefinition) fireLensRouter() *Container {
	for _, c := range td.containers {
		if !c.obj.isNull("firelensConfiguration") {
			return c
		}
	}
	return nil
}

// defenderMemory checks that the task's memory leaves the defender room
// beside the other containers' reservations (memoryReservation, else the hard
// memory limit), and returns the defender's memoryReservation.
func (td *TaskDefinition) defenderMemory(want int) (int, string, error) {
	var taskMem string
	if _, err := td.obj.get("memory", &taskMem); err != nil || taskMem == "" {
		return want, "", nil
	}
	total, ok := parseTaskMemory(taskMem)
	if !ok {
		return want, fmt.Sprintf("task memory %q is not a MiB or GB figure; the defender's need of %d MiB was not checked against it", taskMem, want), nil
	}
	reserved := 0
	var hard []string
	for _, c := range td.containers {
		var m struct {
			Memory            int `json:"memory"`
			MemoryReservation int `json:"memoryReservation"`
		}
		b, _ := c.obj.MarshalJSON()
		_ = json.Unmarshal(b, &m)
		switch {
		case m.MemoryReservation > 0:
			reserved += m.MemoryReservation
		case m.Memory > 0:
			reserved += m.Memory
			hard = append(hard, fmt.Sprintf("%s %d", c.Name(), m.Memory))
		}
	}
	if free := total - reserved; free < want {
		return 0, "", invalid("the task's memory is %d MiB and its containers reserve %d MiB (hard memory: %s), which leaves the defender %d MiB; it needs %d MiB: "+
			"raise the task memory to at least %d MiB, or lower a container's memory, or give it a memoryReservation below its hard limit",
			total, reserved, orNone(hard), max(free, 0), want, reserved+want)
	}
	return want, "", nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// parseTaskMemory reads the task's memory: "512" (MiB), "1GB" or "1 GB".
func parseTaskMemory(s string) (int, bool) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := 1
	if t, ok := strings.CutSuffix(s, "GB"); ok {
		s, mult = strings.TrimSpace(t), 1024
	} else if t, ok := strings.CutSuffix(s, "MB"); ok {
		s = strings.TrimSpace(t)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n * mult, true
}
