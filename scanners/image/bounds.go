package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
	// MaxArchiveManifestSize bounds a docker archive's manifest.json.
	MaxArchiveManifestSize = 1 << 20
	// MaxLayers bounds the number of layers of an image. Docker's overlay2
	// runs at most 125; a manifest of 4 MiB could list 20,000, each one a
	// registry request.
	MaxLayers = 1000
)

// ErrMetadataTooLarge is returned by Open when an image's metadata is over
// a bound above: the image is refused (a file over the file limit is only
// skipped, ErrTooLarge).
var ErrMetadataTooLarge = errors.New("over taskguard's limit")

// BoundedTransport returns a registry transport over rt (nil: ggcr's
// remote.DefaultTransport) that bounds every answer but blobs to
// MaxManifestSize: a body over it fails its read (ggcr does not retry a
// failed read) before it is held in memory whole. Blobs are read as
// streams, verified against the size and digest of their descriptor, so
// a caller also checks the manifest (CheckManifest) before reading a
// config.
func BoundedTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = remote.DefaultTransport
	}
	return limitAnswers{rt}
}

// limitAnswers is BoundedTransport's transport.
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
		return 0, fmt.Errorf("registry %s of %s is %d bytes: %w of %d bytes", b.what, b.url, b.length, ErrMetadataTooLarge, MaxManifestSize)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("registry %s of %s is over %d bytes: %w", b.what, b.url, MaxManifestSize, ErrMetadataTooLarge)
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
		return fmt.Errorf("the manifest declares an image config of %d bytes: %w of %d bytes", m.Config.Size, ErrMetadataTooLarge, MaxConfigSize)
	}
	if len(m.Layers) > MaxLayers {
		return fmt.Errorf("the manifest lists %d layers: %w of %d", len(m.Layers), ErrMetadataTooLarge, MaxLayers)
	}
	return nil
}

// checkLayoutFile bounds a file of an OCI layout that ggcr reads whole
// (index.json, a manifest or index blob): its size on disk is what is
// read, whatever a descriptor says.
func checkLayoutFile(p string, what string) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if st.Size() > MaxManifestSize {
		return fmt.Errorf("%s %s is %d bytes: %w of %d bytes", what, p, st.Size(), ErrMetadataTooLarge, MaxManifestSize)
	}
	return nil
}

// layoutBlob is the path of a blob in an OCI layout.
func layoutBlob(dir string, h v1.Hash) string {
	return filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
}

// checkArchive bounds a single-image docker archive's metadata before
// ggcr reads it: manifest.json, the config entry, the number of layers.
func checkArchive(open opener) error {
	size, found, err := archiveEntrySize(open, "manifest.json")
	if err != nil || !found {
		return err // ggcr names a missing manifest.json
	}
	if size > MaxArchiveManifestSize {
		return fmt.Errorf("its manifest.json is %d bytes: %w of %d bytes", size, ErrMetadataTooLarge, MaxArchiveManifestSize)
	}
	m, err := tarball.LoadManifest(tarball.Opener(open))
	if err != nil || len(m) != 1 {
		return nil // ggcr's own error names what is wrong
	}
	if len(m[0].Layers) > MaxLayers {
		return fmt.Errorf("its manifest.json lists %d layers: %w of %d", len(m[0].Layers), ErrMetadataTooLarge, MaxLayers)
	}
	size, found, err = archiveEntrySize(open, m[0].Config)
	if err != nil || !found {
		return err
	}
	if size > MaxConfigSize {
		return fmt.Errorf("its image config %s is %d bytes: %w of %d bytes", m[0].Config, size, ErrMetadataTooLarge, MaxConfigSize)
	}
	return nil
}

// maxArchiveLinks bounds how many links (symbolic or hard) are followed to
// an archive entry, as ggcr follows them: each one is a pass over the
// archive's headers.
const maxArchiveLinks = 16

// archiveEntrySize returns the size of the entry that ggcr reads for name:
// the first one called name, through links. Only headers are read (tar
// seeks over the contents of a file).
func archiveEntrySize(open opener, name string) (int64, bool, error) {
	want := path.Clean(name)
	for range maxArchiveLinks + 1 {
		hdr, err := archiveHeader(open, want)
		if hdr == nil || err != nil {
			return 0, false, err
		}
		if hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink {
			return hdr.Size, true, nil
		}
		want = path.Join(path.Dir(want), path.Clean(hdr.Linkname))
	}
	return 0, false, fmt.Errorf("entry %s: more than %d links to follow", name, maxArchiveLinks)
}

// archiveHeader returns the header of the first entry called name (clean),
// or nil.
func archiveHeader(open opener, name string) (*tar.Header, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("corrupt or truncated archive: %w", err)
		}
		if path.Clean(hdr.Name) == name {
			return hdr, nil
		}
	}
}
