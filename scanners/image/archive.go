package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// archiveLayers returns the layer entries of a single-image docker archive,
// or nil when the manifest does not describe exactly one image.
func archiveLayers(p string) []string {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(p) })
	if err != nil || len(m) != 1 {
		return nil
	}
	return m[0].Layers
}

// openArchiveEntry returns a reader of the entry called name in the tar
// archive at p.
func openArchiveEntry(p, name string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(f)
	want := path.Clean(name)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			f.Close()
			return nil, fmt.Errorf("archive %s has no entry %s", p, name)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("archive %s (corrupt or truncated archive): %w", p, err)
		}
		if path.Clean(hdr.Name) == want {
			return struct {
				io.Reader
				io.Closer
			}{tr, f}, nil
		}
	}
}
