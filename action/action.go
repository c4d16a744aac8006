package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/sethvargo/go-githubactions"
	"github.com/taskguard/taskguard/console/fargate"
)

// Run reads the step's inputs from gha and runs the requested parts of the
// pipeline. Today that is task protection; scanning and the gate follow.
// It never calls gha.Fatalf: errors are returned for the main to report.
func Run(ctx context.Context, gha *githubactions.Action) error {
	task := gha.GetInput("task-definition")
	if task == "" {
		return errors.New(`input "task-definition" is required: the path of the ECS task definition JSON to protect`)
	}
	out := gha.GetInput("protected-task-output")
	if out == "" {
		out = "protected-task-definition.json"
	}
	extract, err := boolInput(gha, "extract-entrypoint", false)
	if err != nil {
		return err
	}
	token := gha.GetInput("agent-token")
	if token != "" {
		gha.AddMask(token)
	}
	in, err := os.ReadFile(task)
	if err != nil {
		return fmt.Errorf("read task definition: %w", err)
	}
	protected, err := fargate.ProtectJSON(ctx, in, fargate.Options{
		ConsoleAddr:         gha.GetInput("console-addr"),
		DefenderImage:       gha.GetInput("defender-image"),
		AgentToken:          token,
		AgentTokenSecretARN: gha.GetInput("agent-token-secret"),
		ExtractEntrypoint:   extract,
	})
	if err != nil {
		return fmt.Errorf("protect %s: %w", task, err)
	}
	if err := os.WriteFile(out, protected, 0o644); err != nil {
		return fmt.Errorf("write protected task definition: %w", err)
	}
	gha.SetOutput("protected-task-definition", out)
	gha.Infof("protected task definition written to %s", out)
	return nil
}

func boolInput(gha *githubactions.Action, name string, def bool) (bool, error) {
	v := gha.GetInput(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("input %q: %q is not true or false", name, v)
	}
	return b, nil
}
