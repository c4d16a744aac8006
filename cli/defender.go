package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
	output, push, binary, source, tag, user, module string
	ociLayout, arch                                 string
	insecure                                        bool
}

func newDefenderImageCommand() *cobra.Command {
	var f defenderImageFlags
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the defender image (no Docker) into an archive or a registry",
		Long: `Build the defender image with go-containerregistry: the static taskguard-defender
binary at /var/lib/taskguard/defender inside a declared VOLUME /var/lib/taskguard,
entrypoint "/var/lib/taskguard/defender sidecar", user 65532:65532 (--user), labels
org.opencontainers.image.version and .source. The binary is built from the module
source with CGO_ENABLED=0 (--module, default: the current directory) or given with
--binary. The same inputs give the same image digest.

--output writes a docker-archive tarball (podman load, docker load, or
taskguard task run-local --image-archive); --push writes to a registry
(credentials from the docker config). The digest is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output == "" && f.push == "" && f.ociLayout == "" {
				return errors.New("defender image: give --output FILE.tar, --oci-layout DIR and/or --push REF")
			}
			var bin []byte
			var err error
			if f.binary != "" {
				bin, err = os.ReadFile(f.binary)
			} else {
				bin, err = image.BuildBinary(cmd.Context(), f.module)
			}
			if err != nil {
				return fmt.Errorf("defender image: %w", err)
			}
			img, err := image.Build(image.Options{Binary: bin, Version: Version(), Source: f.source, User: f.user, Arch: f.arch})
			if err != nil {
				return err
			}
			digest, err := img.Digest()
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
				if err := tarball.WriteToFile(f.output, tag, img); err != nil {
					return fmt.Errorf("defender image: write %s: %w", f.output, err)
				}
			}
			if f.ociLayout != "" {
				// An OCI image layout (the release's artifact): one image,
				// named by its tag in the index.
				p, err := layout.Write(f.ociLayout, empty.Index)
				if err != nil {
					return fmt.Errorf("defender image: write %s: %w", f.ociLayout, err)
				}
				if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": f.tag})); err != nil {
					return fmt.Errorf("defender image: write %s: %w", f.ociLayout, err)
				}
			}
			if f.push != "" {
				ref, err := name.ParseReference(f.push, nameOpts...)
				if err != nil {
					return fmt.Errorf("defender image: --push %q: %w", f.push, err)
				}
				if err := remote.Write(ref, img, remote.WithContext(cmd.Context()), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
					return fmt.Errorf("defender image: push %s: %w", ref, err)
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), digest)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.output, "output", "", "write a docker-archive tarball here")
	fl.StringVar(&f.push, "push", "", "push to this registry reference")
	fl.StringVar(&f.ociLayout, "oci-layout", "", "write an OCI image layout into this (new or empty) directory")
	fl.StringVar(&f.arch, "arch", "", "the image's architecture (amd64, arm64; default this machine's), matching --binary")
	fl.StringVar(&f.tag, "tag", "taskguard/defender:"+"latest", "the image name recorded in the --output archive")
	fl.StringVar(&f.binary, "binary", "", "use this static taskguard-defender binary instead of building one")
	fl.StringVar(&f.module, "module", ".", "the taskguard module source the binary is built from")
	fl.StringVar(&f.source, "source", image.DefaultSource, "the source label")
	fl.StringVar(&f.user, "user", image.DefaultUser, `uid:gid the sidecar runs as ("0:0" when a WAF port is below 1024)`)
	fl.BoolVar(&f.insecure, "insecure", false, "allow a plain-HTTP registry")
	return cmd
}
