package compliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Task is the part of an ECS task definition the task checks read.
type Task struct {
	Family      string          `json:"family"`
	NetworkMode string          `json:"networkMode"`
	CPU         json.RawMessage `json:"cpu"`
	Memory      json.RawMessage `json:"memory"`
	PIDMode     string          `json:"pidMode"`
	IPCMode     string          `json:"ipcMode"`
	Containers  []Container     `json:"containerDefinitions"`
}

// Container is the part of a container definition the task checks read.
type Container struct {
	Name                   string            `json:"name"`
	Image                  string            `json:"image"`
	User                   string            `json:"user"`
	Privileged             *bool             `json:"privileged"`
	ReadonlyRootFilesystem *bool             `json:"readonlyRootFilesystem"`
	Essential              *bool             `json:"essential"`
	Environment            []nameValue       `json:"environment"`
	LogConfiguration       *json.RawMessage  `json:"logConfiguration"`
	PortMappings           []portMapping     `json:"portMappings"`
	LinuxParameters        *linuxParameters  `json:"linuxParameters"`
	Memory                 *int              `json:"memory"`
	MemoryReservation      *int              `json:"memoryReservation"`
	DockerLabels           map[string]string `json:"dockerLabels"`
}

type nameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type portMapping struct {
	ContainerPort int `json:"containerPort"`
	HostPort      int `json:"hostPort"`
}

type linuxParameters struct {
	Capabilities *struct {
		Add []string `json:"add"`
	} `json:"capabilities"`
}

// ParseTask reads RegisterTaskDefinition JSON or DescribeTaskDefinition output.
func ParseTask(data []byte) (*Task, error) {
	var probe struct {
		TaskDefinition json.RawMessage `json:"taskDefinition"`
		Containers     json.RawMessage `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("task definition: %w", err)
	}
	if len(probe.TaskDefinition) > 0 && len(probe.Containers) == 0 {
		data = probe.TaskDefinition
	}
	var t Task
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("task definition: %w", err)
	}
	if len(t.Containers) == 0 {
		return nil, fmt.Errorf("task definition has no containerDefinitions")
	}
	return &t, nil
}

// taskCheck is a check over a whole task; containerCheck over one container.
type taskCheck struct {
	Check
	task      func(t *Task) []string
	container func(t *Task, c *Container) []string
}

// TaskChecks lists the Fargate task-definition checks in ID order.
func TaskChecks() []Check {
	out := make([]Check, len(taskChecks))
	for i, c := range taskChecks {
		out[i] = c.Check
	}
	return out
}

var taskChecks = []taskCheck{
	{Check: Check{ID: "TG-TASK-001", Family: FamilyTask, Severity: SeverityCritical,
		Title:       "Container runs privileged",
		Remediation: `Remove "privileged": true; Fargate refuses privileged containers and nothing in a task should need it.`},
		container: func(_ *Task, c *Container) []string {
			if c.Privileged != nil && *c.Privileged {
				return []string{"privileged is true"}
			}
			return nil
		}},
	{Check: Check{ID: "TG-TASK-002", Family: FamilyTask, Severity: SeverityHigh,
		Title:       "Container adds Linux capabilities beyond SYS_PTRACE",
		Remediation: "Remove the capabilities from linuxParameters.capabilities.add; Fargate allows only SYS_PTRACE, which the defender needs."},
		container: func(_ *Task, c *Container) []string {
			if c.LinuxParameters == nil || c.LinuxParameters.Capabilities == nil {
				return nil
			}
			var extra []string
			for _, capName := range c.LinuxParameters.Capabilities.Add {
				if n := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(capName), "CAP_")); n != "SYS_PTRACE" {
					extra = append(extra, n)
				}
			}
			if len(extra) == 0 {
				return nil
			}
			return []string{"adds " + strings.Join(extra, ", ")}
		}},
	{Check: Check{ID: "TG-TASK-003", Family: FamilyTask, Severity: SeverityMedium,
		Title:       "Container runs as root",
		Remediation: `Set "user" to a non-root UID (for example "1000:1000") and make sure the image works as that user.`},
		container: func(_ *Task, c *Container) []string {
			u, _, _ := strings.Cut(strings.TrimSpace(c.User), ":")
			switch u {
			case "":
				return []string{"no user is set, so the image's user applies (root unless the image sets USER)"}
			case "0", "root":
				return []string{fmt.Sprintf("user is %q", c.User)}
			}
			return nil
		}},
	{Check: Check{ID: "TG-TASK-004", Family: FamilyTask, Severity: SeverityMedium,
		Title:       "Root filesystem is writable",
		Remediation: `Set "readonlyRootFilesystem": true and mount volumes for the paths the app writes.`},
		container: func(_ *Task, c *Container) []string {
			if c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
				return []string{"readonlyRootFilesystem is not true"}
			}
			return nil
		}},
	{Check: Check{ID: "TG-TASK-005", Family: FamilyTask, Severity: SeverityHigh,
		Title:       "Secret in plain environment",
		Remediation: "Move the value to Secrets Manager or SSM Parameter Store and reference it from the container's secrets list."},
		container: func(_ *Task, c *Container) []string {
			var out []string
			for _, kv := range c.Environment {
				if kind := secretKind(kv.Name, kv.Value); kind != "" {
					out = append(out, fmt.Sprintf("environment variable %s holds %s", kv.Name, kind))
				}
			}
			return out
		}},
	{Check: Check{ID: "TG-TASK-006", Family: FamilyTask, Severity: SeverityLow,
		Title:       "No log configuration",
		Remediation: "Add a logConfiguration (awslogs or awsfirelens) so the container's output is kept."},
		container: func(_ *Task, c *Container) []string {
			if c.LogConfiguration == nil || string(bytes.TrimSpace(*c.LogConfiguration)) == "null" {
				return []string{"no logConfiguration"}
			}
			return nil
		}},
	{Check: Check{ID: "TG-TASK-007", Family: FamilyTask, Severity: SeverityLow,
		Title:       "Image not pinned by digest",
		Remediation: "Reference the image by digest (repository@sha256:...) so every task runs the image that was scanned."},
		container: func(_ *Task, c *Container) []string {
			if !strings.Contains(c.Image, "@sha256:") {
				return []string{fmt.Sprintf("image %s is referenced by tag", c.Image)}
			}
			return nil
		}},
	{Check: Check{ID: "TG-TASK-008", Family: FamilyTask, Severity: SeverityHigh,
		Title:       "No essential container",
		Remediation: `Mark the main container "essential": true so the task stops when it stops.`},
		task: func(t *Task) []string {
			for _, c := range t.Containers {
				if c.Essential == nil || *c.Essential {
					return nil
				}
			}
			return []string{"every container sets essential to false"}
		}},
	{Check: Check{ID: "TG-TASK-009", Family: FamilyTask, Severity: SeverityHigh,
		Title:       "Host networking or host namespaces",
		Remediation: `Use "networkMode": "awsvpc" (Fargate's only mode) and do not share the host's PID or IPC namespace.`},
		task: func(t *Task) []string {
			var out []string
			if t.NetworkMode != "" && t.NetworkMode != "awsvpc" {
				out = append(out, fmt.Sprintf("networkMode is %q", t.NetworkMode))
			}
			if t.PIDMode == "host" {
				out = append(out, `pidMode is "host"`)
			}
			if t.IPCMode == "host" {
				out = append(out, `ipcMode is "host"`)
			}
			return out
		},
		container: func(_ *Task, c *Container) []string {
			var out []string
			for _, pm := range c.PortMappings {
				if pm.HostPort != 0 && pm.HostPort != pm.ContainerPort {
					out = append(out, fmt.Sprintf("hostPort %d differs from containerPort %d", pm.HostPort, pm.ContainerPort))
				}
			}
			return out
		}},
	{Check: Check{ID: "TG-TASK-010", Family: FamilyTask, Severity: SeverityMedium,
		Title:       "No resource limits",
		Remediation: "Set the task's cpu and memory (Fargate requires them) or the container's memory limit."},
		task: func(t *Task) []string {
			if isUnset(t.CPU) || isUnset(t.Memory) {
				if slices.ContainsFunc(t.Containers, func(c Container) bool { return c.Memory != nil }) {
					return nil
				}
				return []string{"the task sets no cpu and memory, and no container sets memory"}
			}
			return nil
		}},
}

func isUnset(raw json.RawMessage) bool {
	s := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	return s == "" || s == "null" || s == "0"
}

// isDefender reports the sidecar that taskguard's protect transform adds; its
// settings are taskguard's, not the user's, so the task checks skip it.
func isDefender(c *Container) bool {
	return c.Name == "taskguard-defender" && c.DockerLabels["io.taskguard.defender"] == "true"
}

// CheckTask runs every task check and returns the findings in check order,
// then container order.
func CheckTask(t *Task) []Finding {
	var out []Finding
	for _, chk := range taskChecks {
		if chk.task != nil {
			for _, msg := range chk.task(t) {
				out = append(out, chk.finding("task "+t.Family, msg))
			}
		}
		if chk.container == nil {
			continue
		}
		for i := range t.Containers {
			c := &t.Containers[i]
			if isDefender(c) {
				continue
			}
			for _, msg := range chk.container(t, c) {
				out = append(out, chk.finding("container "+c.Name, msg))
			}
		}
	}
	return out
}
