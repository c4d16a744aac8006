package fargate

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryImages reads image configs from their registries with the
// credentials of the docker config and its credential helpers (ECR's
// included), as `docker pull` would.
type RegistryImages struct {
	// Options are extra remote options, e.g. a transport for tests.
	Options []remote.Option
}

var _ ImageConfigFetcher = RegistryImages{}

// ImageConfig fetches ref's config for the given platform ("linux/amd64").
func (r RegistryImages) ImageConfig(ctx context.Context, ref, platform string) (ImageConfig, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return ImageConfig{}, fmt.Errorf("%w: image reference %q: %v", ErrInvalidTask, ref, err)
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return ImageConfig{}, fmt.Errorf("platform %q: %w", platform, err)
	}
	opts := append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(*p),
	}, r.Options...)
	img, err := remote.Image(parsed, opts...)
	if err != nil {
		return ImageConfig{}, fmt.Errorf("fetch image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return ImageConfig{}, fmt.Errorf("read image config: %w", err)
	}
	return ImageConfig{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd}, nil
}
