// Package cli is the taskguard command tree (cobra). It only parses flags and
// calls the libraries: the scan, gate, report and task-protection logic live in
// scanners/ and console/.
package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// NewRootCommand returns the taskguard command with every subcommand.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "taskguard",
		Short: "Scan, gate and protect containers for AWS ECS Fargate",
		Long: `taskguard scans container images for vulnerabilities and compliance issues,
gates CI builds on policy, and turns a Fargate task definition into a protected
one with the taskguard defender embedded.

Exit codes: 0 passed, 1 blocked by the gate, 2 could not run.`,
	}
	root.AddCommand(
		newVersionCommand(),
		newTaskCommand(),
		withTimeout(newCICommand()),
		newImageCommand(),
		newDBCommand(),
		newCacheCommand(),
		newSBOMCommand(),
		newDefenderCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the taskguard version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "taskguard", Version())
			return err
		},
	}
}

// releaseVersion is set by the release build (scripts/release.sh:
// -ldflags "-X github.com/taskguard/taskguard/cli.releaseVersion=v1.2.3").
var releaseVersion string

// Version returns the release version, else the module version the binary
// was built from, or "devel".
func Version() string {
	if releaseVersion != "" {
		return releaseVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
