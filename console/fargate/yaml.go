package fargate

import (
	"context"
	"fmt"

	"sigs.k8s.io/yaml"
)

// ProtectYAML is ProtectJSON for a task definition written in YAML; the
// result is YAML too. YAML output orders keys alphabetically.
func ProtectYAML(ctx context.Context, task []byte, opts Options) ([]byte, error) {
	j, err := yaml.YAMLToJSON(task)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid YAML: %v", ErrInvalidTask, err)
	}
	out, err := ProtectJSON(ctx, j, opts)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(out)
}
