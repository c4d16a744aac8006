// Package ocilimit bounds what go-containerregistry reads whole from a
// registry: manifests and indexes, and the config a manifest declares. A
// registry is hostile input; the scanner, the console's entrypoint
// extraction and the vulnerability DB update all read through it.
package ocilimit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Bounds on an image's metadata. ggcr reads a manifest (up to 100 MiB), a
// config blob (whatever size the manifest declares) and a docker
// archive's manifest.json into memory whole, and a registry, a layout or
// an archive is hostile input: these are checked before anything is read.
// The sizes are those of containers/image (Podman, Skopeo), set after
// CVE-2020-1702; registries (CNCF Distribution) refuse manifests over 4 MiB.
const (
	// MaxManifestSize bounds a registry manifest or index (ggcr's own
	// bound is 100 MiB), an OCI layout's index.json and manifests, and any
	// other registry answer that is not a blob (ggcr bounds tokens and
	// error bodies itself).
	MaxManifestSize = 4 << 20
	// MaxConfigSize bounds an image's config blob.
	MaxConfigSize = 4 << 20
	// MaxLayers bounds the number of layers of an image. Docker's overlay2
	// runs at most 125; a manifest of 4 MiB could list 20,000, each one a
	// registry request.
	MaxLayers = 1000
)

// ErrTooLarge is returned when an image's metadata is over a bound above:
// the image is refused.
var ErrTooLarge = errors.New("over taskguard's limit")

// Transport returns a registry transport over rt (nil: ggcr's
// remote.DefaultTransport) that bounds every answer but blobs to
// MaxManifestSize: a body over it fails its read (ggcr does not retry a
// failed read) before it is held in memory whole. Blobs are read as
// streams, verified against the size and digest of their descriptor, so
// a caller also checks the manifest (CheckManifest) before reading a
// config.
func Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = remote.DefaultTransport
	}
	return limitAnswers{rt}
}

// limitAnswers is Transport's transport.
type limitAnswers struct{ rt http.RoundTripper }

func (l limitAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil || resp.Body == nil || r.Method == http.MethodHead {
		return resp, err
	}
	if strings.Contains(r.URL.Path, "/blobs/") {
		return resp, err // streamed; ggcr reads at most 64 KiB of an error answer
	}
	what := "answer"
	if strings.Contains(r.URL.Path, "/manifests/") {
		what = "manifest"
	}
	resp.Body = &boundedBody{rc: resp.Body, left: MaxManifestSize, what: what, url: r.URL.Redacted(), length: resp.ContentLength}
	return resp, nil
}

// boundedBody fails a read once more than left bytes came.
type boundedBody struct {
	rc     io.ReadCloser
	left   int64
	length int64
	what   string
	url    string
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.length > MaxManifestSize {
		return 0, fmt.Errorf("registry %s of %s is %d bytes: %w of %d bytes", b.what, b.url, b.length, ErrTooLarge, MaxManifestSize)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("registry %s of %s is over %d bytes: %w", b.what, b.url, MaxManifestSize, ErrTooLarge)
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// CheckManifest bounds what an image's manifest declares: its config's
// size (MaxConfigSize) and its number of layers (MaxLayers). Call it
// before ConfigFile or Layers.
func CheckManifest(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if m.Config.Size > MaxConfigSize {
		return fmt.Errorf("the manifest declares an image config of %d bytes: %w of %d bytes", m.Config.Size, ErrTooLarge, MaxConfigSize)
	}
	if len(m.Layers) > MaxLayers {
		return fmt.Errorf("the manifest lists %d layers: %w of %d", len(m.Layers), ErrTooLarge, MaxLayers)
	}
	return nil
}
