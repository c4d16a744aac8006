package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/agent/image"
)

func newDefenderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "defender",
		Short: "Build the taskguard defender image",
	}
	cmd.AddCommand(newDefenderImageCommand())
	return cmd
}

type defenderImageFlags struct {
	output, ociLayout, push, source, tag, user, module string
	binaries, platforms                                []string
	insecure                                           bool
}

// defenderBinaries returns the static defender binary of each platform
// (sorted): the --defender-binary files, else binaries built from the
// source tree at --module for --platform.
func defenderBinaries(cmd *cobra.Command, f defenderImageFlags) ([]image.Options, error) {
	var out []image.Options
	if len(f.binaries) > 0 {
		if cmd.Flags().Changed("platform") {
			return nil, errors.New("--platform chooses what to build from source; with --defender-binary the platforms are those of the binaries")
		}
		for _, spec := range f.binaries {
			platform, path, ok := strings.Cut(spec, "=")
			if !ok {
				platform, path = "", spec
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("--defender-binary %s: %w", spec, err)
			}
			arch, err := image.BinaryArch(b)
			if err != nil {
				return nil, fmt.Errorf("--defender-binary %s: %w", spec, err)
			}
			if platform != "" {
				want, err := image.ParsePlatform(platform)
				if err != nil {
					return nil, fmt.Errorf("--defender-binary %s: %w", spec, err)
				}
				if want != arch {
					return nil, fmt.Errorf("--defender-binary %s: the file is a linux/%s binary, not %s", spec, arch, platform)
				}
			}
			out = append(out, image.Options{Binary: b, Arch: arch})
		}
		return out, nil
	}
	tree, ok := image.FindSourceTree(f.module)
	if !ok {
		abs, _ := filepath.Abs(f.module)
		return nil, fmt.Errorf("no defender binary: %s is not inside a taskguard source tree (no go.mod of %s with cmd/taskguard-defender), so nothing can be built; "+
			"give the release's static binaries: --defender-binary linux/amd64=PATH (and --defender-binary linux/arm64=PATH for a two-platform index), or --module DIR of a taskguard source checkout", abs, image.ModulePath)
	}
	for _, p := range f.platforms {
		arch, err := image.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("--platform: %w", err)
		}
		b, err := image.BuildBinary(cmd.Context(), tree, arch)
		if err != nil {
			return nil, err
		}
		out = append(out, image.Options{Binary: b, Arch: arch})
	}
	return out, nil
}

func newDefenderImageCommand() *cobra.Command {
	var f defenderImageFlags
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the defender image (no Docker) into an archive, an OCI layout or a registry",
		Long: `Build the defender image with go-containerregistry: the static taskguard-defender
binary at /var/lib/taskguard/defender inside a declared VOLUME /var/lib/taskguard,
entrypoint "/var/lib/taskguard/defender sidecar", user 65532:65532 (--user), labels
org.opencontainers.image.version and .source. The same inputs give the same digest.

Where the binary comes from:
  --defender-binary linux/amd64=PATH   a static taskguard-defender (a release's), repeatable
                                       per platform; PATH alone takes the platform from the file
  inside a taskguard source tree       built with CGO_ENABLED=0 for each --platform
                                       (default linux/amd64 and linux/arm64; --module DIR)
A released taskguard run outside the source tree needs --defender-binary.

With binaries for several platforms, --push and --oci-layout write an OCI image
index (one manifest per platform) and the index digest is printed; --output
writes a docker-archive tarball (podman load, docker load, taskguard task
run-local --image-archive) of one platform: this machine's, else the first.
With one platform, every destination holds that image and its digest is printed.
Registry credentials come from the docker config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output == "" && f.push == "" && f.ociLayout == "" {
				return errors.New("defender image: give --output FILE.tar, --oci-layout DIR and/or --push REF")
			}
			bins, err := defenderBinaries(cmd, f)
			if err != nil {
				return fmt.Errorf("defender image: %w", err)
			}
			var imgs []v1.Image
			for _, o := range bins {
				o.Version, o.Source, o.User = Version(), f.source, f.user
				img, err := image.Build(o)
				if err != nil {
					return err
				}
				imgs = append(imgs, img)
			}
			idx, err := image.BuildIndex(imgs)
			if err != nil {
				return err
			}
			local := imgs[0] // the archive's image: this machine's platform when built
			for i, o := range bins {
				if o.Arch == runtime.GOARCH {
					local = imgs[i]
				}
			}
			var digest v1.Hash
			if len(imgs) == 1 {
				digest, err = imgs[0].Digest()
			} else {
				digest, err = idx.Digest()
			}
			if err != nil {
				return fmt.Errorf("defender image: %w", err)
			}
			var nameOpts []name.Option
			if f.insecure {
				nameOpts = append(nameOpts, name.Insecure)
			}
			if f.output != "" {
				tag, err := name.NewTag(f.tag, nameOpts...)
				if err != nil {
					return fmt.Errorf("defender image: --tag %q: %w", f.tag, err)
				}
				if err := tarball.WriteToFile(f.output, tag, local); err != nil {
					return fmt.Errorf("defender image: write %s: %w", f.output, err)
				}
			}
			if f.ociLayout != "" {
				if len(imgs) == 1 {
					idx = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: imgs[0]})
				}
				if _, err := layout.Write(f.ociLayout, idx); err != nil {
					return fmt.Errorf("defender image: write the OCI layout %s: %w", f.ociLayout, err)
				}
			}
			if f.push != "" {
				ref, err := name.ParseReference(f.push, nameOpts...)
				if err != nil {
					return fmt.Errorf("defender image: --push %q: %w", f.push, err)
				}
				opts := []remote.Option{remote.WithContext(cmd.Context()), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
				if len(imgs) == 1 {
					err = remote.Write(ref, imgs[0], opts...)
				} else {
					err = remote.WriteIndex(ref, idx, opts...)
				}
				if err != nil {
					return fmt.Errorf("defender image: push %s: %w", ref, err)
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), digest)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.output, "output", "", "write a docker-archive tarball here (one platform)")
	fl.StringVar(&f.ociLayout, "oci-layout", "", "write an OCI image layout (the index) into this directory")
	fl.StringVar(&f.push, "push", "", "push to this registry reference")
	fl.StringVar(&f.tag, "tag", "taskguard/defender:"+"latest", "the image name recorded in the --output archive")
	fl.StringArrayVar(&f.binaries, "defender-binary", nil, "a static taskguard-defender: PLATFORM=PATH (linux/amd64=..., linux/arm64=...) or PATH; repeatable")
	fl.StringArrayVar(&f.binaries, "binary", nil, "the same as --defender-binary")
	_ = fl.MarkHidden("binary")
	fl.StringSliceVar(&f.platforms, "platform", image.Platforms, "platforms to build from source")
	fl.StringVar(&f.module, "module", ".", "build from the taskguard source tree that holds this directory")
	fl.StringVar(&f.source, "source", image.DefaultSource, "the source label")
	fl.StringVar(&f.user, "user", image.DefaultUser, `uid:gid the sidecar runs as ("0:0" when a WAF port is below 1024)`)
	fl.BoolVar(&f.insecure, "insecure", false, "allow a plain-HTTP registry")
	return cmd
}
