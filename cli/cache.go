package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/scanners/layercache"
)

func newCacheCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the layer cache of image scans",
	}
	cmd.AddCommand(newCacheCleanCommand())
	return cmd
}

func newCacheCleanCommand() *cobra.Command {
	var f dbFlags
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove everything the layer cache holds",
		Long: `Remove the per-layer analysis results that image scans keep in
<cache-dir>/layers (default $XDG_CACHE_HOME/taskguard/layers). The
vulnerability DB is left alone. Safe while other scans run: they see a miss
and analyse the layer again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := f.layerCacheDir()
			if err != nil {
				return err
			}
			c, err := layercache.Open(dir, layercache.Options{})
			if err != nil {
				return err
			}
			size, err := c.Size()
			if err != nil {
				return err
			}
			if err := c.Clean(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "layer cache %s cleaned (%d bytes freed)\n", dir, size)
			return err
		},
	}
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "cache directory given to the scans (the layer cache is its layers/ subdirectory; default: $XDG_CACHE_HOME/taskguard/layers)")
	return cmd
}
