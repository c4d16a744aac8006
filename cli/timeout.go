package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/cli/pipeline"
)

// withTimeout adds --timeout to cmd and runs its RunE under that bound: the
// command's context (cmd.Context(), which its run function hands to every
// DB update, image pull, layer read and console call) ends at the bound,
// and a run that failed once it had passed says that it gave up and how
// to raise the bound. ci, image scan, sbom scan, db update and task protect
// (whose --extract-entrypoint reads images from their registries) use it.
func withTimeout(cmd *cobra.Command) *cobra.Command {
	t := pipeline.Timeout{Setting: "--timeout", Example: "--timeout %s"}
	cmd.Flags().DurationVar(&t.After, "timeout", pipeline.DefaultTimeout,
		"give up after this long, e.g. 30m (0: no limit): the whole run, DB update, image pull and analysis, console calls and reports included")
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := t.Check(); err != nil {
			return err
		}
		err := t.Run(cmd.Context(), func(ctx context.Context) error {
			cmd.SetContext(ctx)
			return run(cmd, args)
		})
		if errors.Is(err, pipeline.ErrGaveUp) {
			// "taskguard: image scan: gave up after 10m0s (--timeout): …"
			return fmt.Errorf("%s: %w", strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), err)
		}
		return err
	}
	return cmd
}
