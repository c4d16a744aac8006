package fargatetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/fargate"
)

// TestReadDefender reads back a task protected with and without WAF ports
// and the health check.
func TestReadDefender(t *testing.T) {
	task := []byte(`{"family": "web", "containerDefinitions": [{"name": "app", "image": "app:1", "entryPoint": ["/app"]}]}`)
	for _, tt := range []struct {
		name      string
		opts      fargate.Options
		ports     []int
		health    bool
		condition string
	}{
		{"plain", fargate.Options{}, nil, false, "START"},
		{"waf and health", fargate.Options{WAFPorts: []uint16{9443, 8443}, DefenderHealthCheck: true}, []int{8443, 9443}, true, "HEALTHY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := fargate.ProtectJSONReport(context.Background(), task, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			d := ReadDefender(t, out)
			if !slices.Equal(d.Ports, tt.ports) || (d.HealthCheck != nil) != tt.health || d.WaitsFor["app"] != tt.condition {
				t.Errorf("defender %+v, want ports %v, health check %v, app waiting for %s", d, tt.ports, tt.health, tt.condition)
			}
			if diff := d.Diff(tt.ports, tt.health, "app"); diff != "" {
				t.Errorf("Diff of the defender it read: %s", diff)
			}
			if diff := d.Diff([]int{1}, !tt.health, "app"); strings.Count(diff, "; ") != 2 {
				t.Errorf("Diff of another defender = %q, want its ports, health check and condition named", diff)
			}
		})
	}
}
