package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/scanners/layercache"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// dbFlags are the flags shared by the commands that use the vulnerability DB.
type dbFlags struct {
	cacheDir   string
	repository string
	offline    bool
	insecure   bool
	noCache    bool
}

// registerLayerCache adds --no-cache, for the commands that scan images.
func (f *dbFlags) registerLayerCache(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "read every image layer, without the layer cache (<cache-dir>/layers, default $XDG_CACHE_HOME/taskguard/layers)")
}

// layerCacheDir is where the layer cache lives: <--cache-dir>/layers, or
// $XDG_CACHE_HOME/taskguard/layers.
func (f *dbFlags) layerCacheDir() (string, error) {
	if f.cacheDir != "" {
		return filepath.Join(f.cacheDir, "layers"), nil
	}
	return layercache.DefaultDir()
}

// layerCache opens the layer cache, or returns nil for --no-cache. A cache
// that cannot be opened (a read-only home) is warned about and the scan
// goes on without it.
func (f *dbFlags) layerCache(cmd *cobra.Command) *layercache.Cache {
	if f.noCache {
		return nil
	}
	dir, err := f.layerCacheDir()
	if err == nil {
		var c *layercache.Cache
		if c, err = layercache.Open(dir, layercache.Options{}); err == nil {
			return c
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "warning: scanning without the layer cache: %v\n", err)
	return nil
}

func (f *dbFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "directory of the vulnerability DB (default $XDG_CACHE_HOME/taskguard/db)")
	cmd.Flags().StringVar(&f.repository, "db-repository", vulndb.DefaultRepository, "OCI artifact to download the DB from (a mirror of ghcr.io/aquasecurity/trivy-db:2)")
	cmd.Flags().BoolVar(&f.offline, "offline", false, "never touch the network: use the cached DB as it is")
	cmd.Flags().BoolVar(&f.insecure, "insecure-registry", false, "allow plain HTTP to registries that are not on loopback")
}

func (f *dbFlags) dir() (string, error) {
	if f.cacheDir != "" {
		return f.cacheDir, nil
	}
	return vulndb.DefaultDir()
}

func (f *dbFlags) update(ctx context.Context, cmd *cobra.Command, force bool) (vulndb.UpdateResult, error) {
	dir, err := f.dir()
	if err != nil {
		return vulndb.UpdateResult{}, err
	}
	opts := vulndb.UpdateOptions{Repository: f.repository, Offline: f.offline, Force: force, Insecure: f.insecure}
	if isTerminal(cmd.ErrOrStderr()) {
		opts.Progress = cmd.ErrOrStderr()
	}
	return vulndb.Update(ctx, dir, opts)
}

// openDB opens the vulnerability DB of f for a scan, updating it first unless
// skipUpdate (the commands' --skip-db-update). The update runs under ctx.
func openDB(ctx context.Context, cmd *cobra.Command, f *dbFlags, skipUpdate bool) (*vulndb.DB, error) {
	dir, err := f.dir()
	if err != nil {
		return nil, err
	}
	if !skipUpdate {
		if _, err := f.update(ctx, cmd, false); err != nil {
			return nil, fmt.Errorf("update the vulnerability DB (--skip-db-update scans with the cached one): %w", err)
		}
	}
	return vulndb.OpenContext(ctx, dir)
}

func newDBCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the vulnerability database",
	}
	cmd.AddCommand(withTimeout(newDBUpdateCommand()), newDBBuildCommand())
	return cmd
}

func newDBUpdateCommand() *cobra.Command {
	var f dbFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Download the vulnerability DB unless the cached one is current",
		Long: `Download the vulnerability DB (the OCI artifact ghcr.io/aquasecurity/trivy-db:2,
or --db-repository) into the cache directory. Nothing is downloaded while the
cached DB's NextUpdate lies in the future, unless --force is given.
Registry credentials come from the docker config and credential helpers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := f.update(cmd.Context(), cmd, force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if res.Downloaded {
				_, err = fmt.Fprintf(out, "vulnerability DB updated (built %s, next update %s)\n",
					res.Metadata.UpdatedAt.UTC().Format(time.RFC3339), res.Metadata.NextUpdate.UTC().Format(time.RFC3339))
				return err
			}
			_, err = fmt.Fprintf(out, "vulnerability DB not downloaded: %s\n", res.Reason)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "download even if the cached DB is current")
	return cmd
}

func newDBBuildCommand() *cobra.Command {
	var cacheDir, src string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the vulnerability DB from advisory files",
		Long: `Build a vulnerability DB (trivy-db format) from advisory files: a directory with
go-osv/*.json (Go OSV reports), ghsa-npm/*.json (GitHub npm advisories),
debian-bookworm/*.json (Debian bookworm security-update facts), and GitHub (or
other OSV) advisories of the language ecosystems in ghsa-pip/, ghsa-rubygems/,
ghsa-cargo/, ghsa-composer/, ghsa-nuget/ and ghsa-maven/; and the OS
advisories trivy-db's builder reads: alpine-secdb/ (Alpine secdb JSON),
ubuntu/ (Ubuntu CVE tracker), amazon/<release>/ (ALAS), rocky/<major>/ and
alma/<major>/ (errata), redhat-osv/ (Red Hat advisories as OSV). For tests and
air-gapped use; the cached DB is replaced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if src == "" {
				return fmt.Errorf("db build: --advisories is required (a directory such as ../shared/corpora/advisories)")
			}
			if _, err := os.Stat(src); err != nil {
				return fmt.Errorf("db build: %w", err)
			}
			dir := cacheDir
			if dir == "" {
				var err error
				if dir, err = vulndb.DefaultDir(); err != nil {
					return err
				}
			}
			st, err := vulndb.Build(cmd.Context(), dir, src, time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "vulnerability DB built in %s: %d advisories, %d vulnerabilities\n", dir, st.Advisories, st.Vulnerabilities)
			return err
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "directory of the vulnerability DB (default $XDG_CACHE_HOME/taskguard/db)")
	cmd.Flags().StringVar(&src, "advisories", "", "directory of advisory files")
	return cmd
}
