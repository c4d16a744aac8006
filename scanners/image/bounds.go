package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/internal/ocilimit"
)

// Bounds on an image's metadata, checked before go-containerregistry
// reads it whole (internal/ocilimit for registries; the archive and
// layout checks here). The sizes are those of containers/image (Podman,
// Skopeo), set after CVE-2020-1702.
const (
	// MaxManifestSize bounds a registry manifest or index and an OCI
	// layout's index.json and manifests.
	MaxManifestSize = ocilimit.MaxManifestSize
	// MaxConfigSize bounds an image's config.
	MaxConfigSize = ocilimit.MaxConfigSize
	// MaxArchiveManifestSize bounds a docker archive's manifest.json.
	MaxArchiveManifestSize = 1 << 20
	// MaxLayers bounds the number of layers of an image.
	MaxLayers = ocilimit.MaxLayers
)

// ErrMetadataTooLarge is returned by Open when an image's metadata is over
// a bound above: the image is refused (a file over the file limit is only
// skipped, ErrTooLarge).
var ErrMetadataTooLarge = ocilimit.ErrTooLarge

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
