package localrun

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/taskguard/taskguard/console/fargate"
)

// Task is the part of an ECS task definition a local run uses.
type Task struct {
	Family     string      `json:"family"`
	Containers []Container `json:"containerDefinitions"`
}

// Container is one container definition.
type Container struct {
	Name             string         `json:"name"`
	Image            string         `json:"image"`
	EntryPoint       []string       `json:"entryPoint"`
	Command          []string       `json:"command"`
	Environment      []KeyValue     `json:"environment"`
	Secrets          []Secret       `json:"secrets"`
	Essential        *bool          `json:"essential"`
	VolumesFrom      []VolumeFrom   `json:"volumesFrom"`
	DependsOn        []Dependency   `json:"dependsOn"`
	LinuxParameters  *LinuxParams   `json:"linuxParameters"`
	PortMappings     []PortMapping  `json:"portMappings"`
	HealthCheck      *HealthCheck   `json:"healthCheck"`
	WorkingDirectory string         `json:"workingDirectory"`
	User             string         `json:"user"`
	Ulimits          []ulimitConfig `json:"ulimits"`
}

type ulimitConfig struct {
	Name      string `json:"name"`
	SoftLimit int64  `json:"softLimit"`
	HardLimit int64  `json:"hardLimit"`
}

// KeyValue is an environment entry.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Secret is an ECS secrets entry (Secrets Manager or SSM ARN).
type Secret struct {
	Name      string `json:"name"`
	ValueFrom string `json:"valueFrom"`
}

// VolumeFrom mounts another container's volumes.
type VolumeFrom struct {
	SourceContainer string `json:"sourceContainer"`
	ReadOnly        bool   `json:"readOnly"`
}

// Dependency is a dependsOn entry.
type Dependency struct {
	ContainerName string `json:"containerName"`
	Condition     string `json:"condition"`
}

// LinuxParams holds the capabilities a container adds or drops.
type LinuxParams struct {
	Capabilities *struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	InitProcessEnabled bool `json:"initProcessEnabled"`
}

// PortMapping is a container port; under awsvpc the host port is the same.
type PortMapping struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort"`
	Protocol      string `json:"protocol"`
}

// HealthCheck is the ECS health check (times in seconds).
type HealthCheck struct {
	Command     []string `json:"command"`
	Interval    int      `json:"interval"`
	Timeout     int      `json:"timeout"`
	Retries     int      `json:"retries"`
	StartPeriod int      `json:"startPeriod"`
}

// IsEssential reports the ECS default: essential unless set to false.
func (c *Container) IsEssential() bool { return c.Essential == nil || *c.Essential }

// ParseTask reads a task definition (RegisterTaskDefinition input or
// DescribeTaskDefinition output) and checks what a local run needs: names,
// images, dependsOn targets and conditions, volumesFrom sources, ports, and
// no dependency cycle.
func ParseTask(data []byte) (*Task, error) {
	td, err := fargate.Parse(data)
	if err != nil {
		return nil, err
	}
	norm, err := td.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("task definition: %w", err)
	}
	var t Task
	if err := json.Unmarshal(norm, &t); err != nil {
		return nil, fmt.Errorf("task definition: %w", err)
	}
	if t.Family == "" {
		t.Family = "task"
	}
	if len(t.Containers) == 0 {
		return nil, fmt.Errorf("task definition: no containerDefinitions")
	}
	byName := map[string]*Container{}
	for i := range t.Containers {
		c := &t.Containers[i]
		if c.Image == "" {
			return nil, fmt.Errorf("container %q: no image", c.Name)
		}
		if byName[c.Name] != nil {
			return nil, fmt.Errorf("container %q: defined twice", c.Name)
		}
		byName[c.Name] = c
	}
	essential := false
	for i := range t.Containers {
		c := &t.Containers[i]
		essential = essential || c.IsEssential()
		for _, d := range c.DependsOn {
			if byName[d.ContainerName] == nil {
				return nil, fmt.Errorf("container %q: dependsOn %q: no such container", c.Name, d.ContainerName)
			}
			switch strings.ToUpper(d.Condition) {
			case "START", "COMPLETE", "SUCCESS":
			case "HEALTHY":
				if byName[d.ContainerName].HealthCheck == nil {
					return nil, fmt.Errorf("container %q: dependsOn %q HEALTHY, but %q has no healthCheck", c.Name, d.ContainerName, d.ContainerName)
				}
			default:
				return nil, fmt.Errorf("container %q: dependsOn %q: condition %q is not START, COMPLETE, SUCCESS or HEALTHY", c.Name, d.ContainerName, d.Condition)
			}
		}
		for _, v := range c.VolumesFrom {
			if byName[v.SourceContainer] == nil {
				return nil, fmt.Errorf("container %q: volumesFrom %q: no such container", c.Name, v.SourceContainer)
			}
		}
		for _, p := range c.PortMappings {
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				return nil, fmt.Errorf("container %q: containerPort %d out of range", c.Name, p.ContainerPort)
			}
			if p.HostPort != 0 && p.HostPort != p.ContainerPort {
				return nil, fmt.Errorf("container %q: hostPort %d differs from containerPort %d (awsvpc needs them equal)", c.Name, p.HostPort, p.ContainerPort)
			}
		}
	}
	if !essential {
		return nil, fmt.Errorf("task definition: no essential container")
	}
	if _, err := t.startOrder(); err != nil {
		return nil, err
	}
	return &t, nil
}

// startOrder returns the containers so that each comes after what it
// depends on (and after its volumesFrom sources); ties keep file order.
func (t *Task) startOrder() ([]*Container, error) {
	idx := map[string]int{}
	for i, c := range t.Containers {
		idx[c.Name] = i
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(t.Containers))
	var order []*Container
	var visit func(i int, path []string) error
	visit = func(i int, path []string) error {
		c := &t.Containers[i]
		switch state[i] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("task definition: dependsOn/volumesFrom cycle: %s", strings.Join(append(path, c.Name), " -> "))
		}
		state[i] = visiting
		for _, d := range c.DependsOn {
			if err := visit(idx[d.ContainerName], append(path, c.Name)); err != nil {
				return err
			}
		}
		for _, v := range c.VolumesFrom {
			if err := visit(idx[v.SourceContainer], append(path, c.Name)); err != nil {
				return err
			}
		}
		state[i] = done
		order = append(order, c)
		return nil
	}
	for i := range t.Containers {
		if err := visit(i, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
