// Package fargatetest reads back what tests of the protect paths (the CLI,
// the GitHub Action, the Jenkins steps) check in a protected task
// definition. It is imported only by tests.
package fargatetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/fargate"
)

// Defender is what the WAF-port and health-check options change in a
// protected task: the defender's port mappings and health check, and the
// condition each container waits on the defender for.
type Defender struct {
	// Ports are the defender's containerPort mappings, in order.
	Ports []int
	// HealthCheck is the defender's healthCheck command (nil: none).
	HealthCheck []string
	// WaitsFor maps each container that dependsOn the defender to the
	// condition (START, HEALTHY).
	WaitsFor map[string]string
}

// ReadDefender decodes a protected task definition (RegisterTaskDefinition
// JSON) and returns its defender's shape; a task without a defender fails
// the test.
func ReadDefender(t testing.TB, data []byte) Defender {
	t.Helper()
	var td struct {
		ContainerDefinitions []struct {
			Name         string `json:"name"`
			PortMappings []struct {
				ContainerPort int `json:"containerPort"`
			} `json:"portMappings"`
			HealthCheck *struct {
				Command []string `json:"command"`
			} `json:"healthCheck"`
			DependsOn []struct {
				ContainerName string `json:"containerName"`
				Condition     string `json:"condition"`
			} `json:"dependsOn"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(data, &td); err != nil {
		t.Fatalf("protected task: %v\n%s", err, data)
	}
	d := Defender{WaitsFor: map[string]string{}}
	found := false
	for _, c := range td.ContainerDefinitions {
		if c.Name == fargate.DefenderContainerName {
			found = true
			for _, p := range c.PortMappings {
				d.Ports = append(d.Ports, p.ContainerPort)
			}
			if c.HealthCheck != nil {
				d.HealthCheck = c.HealthCheck.Command
			}
			continue
		}
		for _, dep := range c.DependsOn {
			if dep.ContainerName == fargate.DefenderContainerName {
				d.WaitsFor[c.Name] = dep.Condition
			}
		}
	}
	if !found {
		t.Fatalf("the protected task has no %s container:\n%s", fargate.DefenderContainerName, data)
	}
	return d
}

// Diff says how d differs from a defender that maps exactly ports and has
// a health check when health is true, with container app waiting for it to
// be HEALTHY (health) or started (START); "" when it does not.
func (d Defender) Diff(ports []int, health bool, app string) string {
	var diffs []string
	if !slices.Equal(d.Ports, ports) {
		diffs = append(diffs, fmt.Sprintf("ports %v, want %v", d.Ports, ports))
	}
	wantCheck := []string(nil)
	if health {
		wantCheck = []string{"CMD", fargate.LauncherPath, "health"}
	}
	if !slices.Equal(d.HealthCheck, wantCheck) {
		diffs = append(diffs, fmt.Sprintf("health check %q, want %q", d.HealthCheck, wantCheck))
	}
	condition := "START"
	if health {
		condition = "HEALTHY"
	}
	if d.WaitsFor[app] != condition {
		diffs = append(diffs, fmt.Sprintf("%s waits for %q on the defender, want %s", app, d.WaitsFor[app], condition))
	}
	return strings.Join(diffs, "; ")
}
