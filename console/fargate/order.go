package fargate

import (
	"fmt"
	"slices"
	"strings"
)

// StartOrder checks that ECS can start the task's containers: every
// dependsOn and volumesFrom names a container of the task, HEALTHY is asked only of a
// container with a healthCheck, SUCCESS and COMPLETE only of a non-essential
// one, and no container waits for itself through any chain of dependencies —
// the explicit dependsOn, volumesFrom (the source is made first) and the
// implicit one ECS adds from every container logging with awsfirelens to the
// FireLens router. A cycle is named.
func (td *TaskDefinition) StartOrder() error {
	byName := map[string]*Container{}
	for _, c := range td.containers {
		byName[c.Name()] = c
	}
	edges := map[string][]string{} // container -> the containers it waits for
	for _, c := range td.containers {
		var deps []dependency
		if _, err := c.obj.get("dependsOn", &deps); err != nil {
			return invalid("container %q: %v", c.Name(), err)
		}
		for _, d := range deps {
			target, ok := byName[d.ContainerName]
			if !ok {
				return invalid("container %q depends on %q, which is not a container of the task", c.Name(), d.ContainerName)
			}
			switch d.Condition {
			case "HEALTHY":
				if target.obj.isNull("healthCheck") {
					return invalid("container %q waits for %q to be HEALTHY, but %q has no healthCheck", c.Name(), d.ContainerName, d.ContainerName)
				}
			case "SUCCESS", "COMPLETE":
				if target.essential() {
					return invalid("container %q waits for %q to %s, but %q is essential (ECS allows %s only on a non-essential container)", c.Name(), d.ContainerName, d.Condition, d.ContainerName, d.Condition)
				}
			case "START":
			default:
				return invalid("container %q: dependsOn condition %q: ECS knows START, COMPLETE, SUCCESS and HEALTHY", c.Name(), d.Condition)
			}
			edges[c.Name()] = append(edges[c.Name()], d.ContainerName)
		}
		var vfs []volumeFrom
		if _, err := c.obj.get("volumesFrom", &vfs); err != nil {
			return invalid("container %q: %v", c.Name(), err)
		}
		for _, v := range vfs {
			if _, ok := byName[v.SourceContainer]; !ok {
				return invalid("container %q has volumesFrom %q, which is not a container of the task", c.Name(), v.SourceContainer)
			}
		}
	}
	td.volumeEdges(edges)
	td.implicitEdges(edges)
	if cycle := findCycle(td.containerNames(), edges); cycle != nil {

		return invalid("the containers cannot start: dependency cycle %s (through dependsOn, volumesFrom, or FireLens: a container logging with awsfirelens waits for the log router)", strings.Join(cycle, " → "))
	}
	return nil
}

// volumeEdges add volumesFrom: the source container is made before the
// container that mounts its volumes.
func (td *TaskDefinition) volumeEdges(edges map[string][]string) {
	for _, c := range td.containers {
		var vfs []volumeFrom
		_, _ = c.obj.get("volumesFrom", &vfs)
		for _, v := range vfs {
			if !slices.Contains(edges[c.Name()], v.SourceContainer) {
				edges[c.Name()] = append(edges[c.Name()], v.SourceContainer)
			}
		}
	}
}

// implicitEdges are the dependencies ECS adds from its FireLens rule: a
// container that logs with awsfirelens waits for the log router.
func (td *TaskDefinition) implicitEdges(edges map[string][]string) {
	router := td.fireLensRouter()
	if router == nil {
		return
	}
	for _, c := range td.containers {
		var lc logConfiguration
		if _, err := c.obj.get("logConfiguration", &lc); err == nil && lc.LogDriver == "awsfirelens" && c != router &&
			!slices.Contains(edges[c.Name()], router.Name()) {
			edges[c.Name()] = append(edges[c.Name()], router.Name())
		}
	}
}

// waitsForAny reports whether container from waits, directly or through a
// chain of dependencies (explicit, or FireLens's implicit ones), for any of
// targets. Malformed dependsOn entries are ignored here; StartOrder reports them.
func (td *TaskDefinition) waitsForAny(from string, targets map[string]bool) bool {
	edges := map[string][]string{}
	for _, c := range td.containers {
		var deps []dependency
		_, _ = c.obj.get("dependsOn", &deps)
		for _, d := range deps {
			edges[c.Name()] = append(edges[c.Name()], d.ContainerName)
		}
	}
	td.volumeEdges(edges)
	td.implicitEdges(edges)
	seen := map[string]bool{}
	var walk func(n string) bool
	walk = func(n string) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		for _, m := range edges[n] {
			if targets[m] || walk(m) {
				return true
			}
		}
		return false
	}
	return targets[from] || walk(from)
}

// essential reports the container's essential flag (true when absent).
func (c *Container) essential() bool {
	e := true
	_, _ = c.obj.get("essential", &e)
	return e
}

// findCycle returns a cycle as a path that ends where it starts, or nil.
func findCycle(nodes []string, edges map[string][]string) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		stack = append(stack, n)
		for _, m := range edges[n] {
			switch state[m] {
			case onPath:
				i := slices.Index(stack, m)
				return append(slices.Clone(stack[i:]), m)
			case unseen:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	for _, n := range nodes {
		if state[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// Validate checks the task definition against the ECS RegisterTaskDefinition
// input model, as the AWS CLI and SDKs do before sending it. Fields the model
// does not know are allowed (a newer API may know them; protect keeps what
// the user wrote); every other problem is an error naming the field.
func (td *TaskDefinition) Validate() error {
	m, err := RegisterTaskDefinitionModel()
	if err != nil {
		return err
	}
	b, err := td.MarshalJSON()
	if err != nil {
		return err
	}
	probs, err := m.Validate(b)
	if err != nil {
		return err
	}
	var msgs []string
	for _, p := range probs {
		if !p.Unknown {
			msgs = append(msgs, p.String())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	const most = 10
	if len(msgs) > most {
		msgs = append(msgs[:most], fmt.Sprintf("and %d more", len(msgs)-most))
	}
	return invalid("the task does not fit the ECS RegisterTaskDefinition input, so it would not register: %s", strings.Join(msgs, "; "))
}
