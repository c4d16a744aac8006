package fargate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// ErrInvalidTask is wrapped by every error about the task definition itself
// (as opposed to an unreachable registry): the console answers it with 400,
// the CLI with exit code 2 and the message.
var ErrInvalidTask = errors.New("invalid task definition")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidTask, fmt.Sprintf(format, args...))
}

// readOnlyFields are in DescribeTaskDefinition output but are refused by
// RegisterTaskDefinition; Parse drops them.
var readOnlyFields = []string{
	"taskDefinitionArn", "revision", "status", "requiresAttributes",
	"compatibilities", "registeredAt", "registeredBy", "deregisteredAt",
}

// containerName is what ECS accepts as a container name.
var containerName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// TaskDefinition is an ECS task definition in RegisterTaskDefinition form.
type TaskDefinition struct {
	obj        *object
	containers []*Container
}

// Container is one entry of containerDefinitions.
type Container struct {
	obj *object
}

// Parse reads a task definition: RegisterTaskDefinition input (as taken by
// `aws ecs register-task-definition --cli-input-json`) or DescribeTaskDefinition
// output (`{"taskDefinition": {...}, "tags": [...]}`). Read-only fields are
// dropped; describe output's tags move into the definition.
func Parse(data []byte) (*TaskDefinition, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalid("the input is empty; expected a task definition in JSON")
	}
	obj, err := parseObject(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTask, err)
	}
	if obj.has("taskDefinition") && !obj.has("containerDefinitions") {
		inner, err := unwrapDescribe(obj)
		if err != nil {
			return nil, err
		}
		obj = inner
	}
	for _, f := range readOnlyFields {
		obj.del(f)
	}
	if err := obj.dropNulls(); err != nil {
		return nil, err
	}
	td := &TaskDefinition{obj: obj}
	if err := td.parseContainers(); err != nil {
		return nil, err
	}
	return td, nil
}

// dropNulls removes null members at every depth (see dropNulls).
func (o *object) dropNulls() error {
	for _, k := range slices.Clone(o.keys) {
		if o.isNull(k) {
			o.del(k)
			continue
		}
		v, err := dropNulls(o.vals[k], k)
		if err != nil {
			return err
		}
		o.vals[k] = v
	}
	return nil
}

func unwrapDescribe(outer *object) (*object, error) {
	raw := outer.vals["taskDefinition"]
	inner, err := parseObject(raw)
	if err != nil {
		return nil, invalid("field \"taskDefinition\": %v", err)
	}
	var tags []json.RawMessage
	if _, err := outer.get("tags", &tags); err != nil {
		return nil, invalid("%v", err)
	}
	if len(tags) > 0 && !inner.has("tags") {
		inner.setRaw("tags", outer.vals["tags"])
	}
	return inner, nil
}

func (td *TaskDefinition) parseContainers() error {
	var raws []json.RawMessage
	found, err := td.obj.get("containerDefinitions", &raws)
	if err != nil {
		return invalid("%v", err)
	}
	if !found || len(raws) == 0 {
		return invalid("no containerDefinitions: a task definition needs at least one container")
	}
	names := map[string]int{}
	for i, raw := range raws {
		obj, err := parseObject(raw)
		if err != nil {
			return invalid("containerDefinitions[%d]: %v", i, err)
		}
		c := &Container{obj: obj}
		name, err := c.str("name")
		if err != nil {
			return invalid("containerDefinitions[%d]: %v", i, err)
		}
		switch {
		case name == "":
			return invalid("containerDefinitions[%d] has no name", i)
		case !containerName.MatchString(name):
			return invalid("containerDefinitions[%d]: name %q may hold only letters, digits, hyphens and underscores (1-255)", i, name)
		}
		if j, dup := names[name]; dup {
			return invalid("containerDefinitions[%d] and [%d] are both named %q; container names must be unique", j, i, name)
		}
		names[name] = i
		image, err := c.str("image")
		if err != nil {
			return invalid("container %q: %v", name, err)
		}
		if image == "" {
			return invalid("container %q has no image", name)
		}
		for _, f := range []string{"entryPoint", "command"} {
			if _, err := c.strings(f); err != nil {
				return invalid("container %q: %v", name, err)
			}
		}
		td.containers = append(td.containers, c)
	}
	return nil
}

// Family returns the task family.
func (td *TaskDefinition) Family() string {
	var s string
	_, _ = td.obj.get("family", &s)
	return s
}

// Containers returns the container definitions in order.
func (td *TaskDefinition) Containers() []*Container { return td.containers }

// Container returns the container with the given name, or nil.
func (td *TaskDefinition) Container(name string) *Container {
	for _, c := range td.containers {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// MarshalJSON writes the task definition with its containers.
func (td *TaskDefinition) MarshalJSON() ([]byte, error) {
	raws := make([]json.RawMessage, len(td.containers))
	for i, c := range td.containers {
		b, err := c.obj.MarshalJSON()
		if err != nil {
			return nil, err
		}
		raws[i] = b
	}
	if err := td.obj.set("containerDefinitions", raws); err != nil {
		return nil, err
	}
	return td.obj.MarshalJSON()
}

// Indented returns the task definition as indented JSON, ending in a newline.
func (td *TaskDefinition) Indented() ([]byte, error) {
	b, err := td.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Name returns the container's name.
func (c *Container) Name() string { s, _ := c.str("name"); return s }

// Image returns the container's image reference.
func (c *Container) Image() string { s, _ := c.str("image"); return s }

// EntryPoint returns the container's entryPoint (nil when absent).
func (c *Container) EntryPoint() []string { s, _ := c.strings("entryPoint"); return s }

// Command returns the container's command (nil when absent).
func (c *Container) Command() []string { s, _ := c.strings("command"); return s }

func (c *Container) str(key string) (string, error) {
	var s string
	_, err := c.obj.get(key, &s)
	return s, err
}

func (c *Container) strings(key string) ([]string, error) {
	var s []string
	_, err := c.obj.get(key, &s)
	return s, err
}
