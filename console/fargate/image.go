package fargate

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/internal/ocilimit"
)

// RegistryImages reads image configs from their registries with the
// credentials of the docker config and its credential helpers (ECR's
// included), as `docker pull` would.
type RegistryImages struct {
	// Transport carries the registry calls (nil: the default transport);
	// every answer but blobs is bounded (ocilimit.Transport).
	Transport http.RoundTripper
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
	img, err := remote.Image(parsed,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(*p),
		remote.WithTransport(ocilimit.Transport(r.Transport)))
	if err != nil {
		return ImageConfig{}, fmt.Errorf("fetch image: %w", err)
	}
	// A hostile registry's manifest may declare a config of any size,
	// which ggcr would read whole into the console's memory.
	if err := ocilimit.CheckManifest(img); err != nil {
		return ImageConfig{}, fmt.Errorf("fetch image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return ImageConfig{}, fmt.Errorf("read image config: %w", err)
	}
	return ImageConfig{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd}, nil
}
