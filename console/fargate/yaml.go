package fargate

import (
	"context"
	"fmt"

	"sigs.k8s.io/yaml"
)

// ProtectYAML is ProtectJSON for a task definition written in YAML; the
// result is YAML too. YAML output orders keys alphabetically.
func ProtectYAML(ctx context.Context, task []byte, opts Options) ([]byte, error) {
	out, _, err := ProtectYAMLReport(ctx, task, opts)
	return out, err
}

// ProtectYAMLReport is ProtectYAML that reports what it did.
func ProtectYAMLReport(ctx context.Context, task []byte, opts Options) ([]byte, Report, error) {
	j, err := yaml.YAMLToJSON(task)
	if err != nil {
		return nil, Report{}, fmt.Errorf("%w: invalid YAML: %v", ErrInvalidTask, err)
	}
	out, rep, err := ProtectJSONReport(ctx, j, opts)
	if err != nil {
		return nil, Report{}, err
	}
	y, err := yaml.JSONToYAML(out)
	return y, rep, err
}
