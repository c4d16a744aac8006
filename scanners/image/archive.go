package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// opener opens a docker archive (a plain tar) from its start.
type opener func() (io.ReadCloser, error)

// fileOpener opens the archive file at p.
func fileOpener(p string) opener {
	return func() (io.ReadCloser, error) { return os.Open(p) }
}

// archiveLayers returns the layer entries of a single-image docker archive,
// or nil when the manifest does not describe exactly one image.
func archiveLayers(open opener) []string {
	m, err := tarball.LoadManifest(tarball.Opener(open))
	if err != nil || len(m) != 1 {
		return nil
	}
	return m[0].Layers
}

// openArchiveEntry returns a reader of the entry called name in the tar
// archive that open opens; p names the archive in errors.
func openArchiveEntry(open opener, p, name string) (io.ReadCloser, error) {
	f, err := open()
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

// compressedArchive reports whether the file at p starts like a gzip or
// zstd stream (a "docker save | gzip" archive, image.tar.gz).
func compressedArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	head = head[:n]
	return bytes.HasPrefix(head, gzipMagic) || bytes.HasPrefix(head, zstdMagic), nil
}

// unpackArchive decompresses a compressed docker archive once into an
// unlinked temporary file (so that nothing is left behind, whatever
// happens) and returns an opener of the plain tar. A docker archive is
// read at random places (manifest, config, each layer), which a
// compressed stream cannot do without unpacking it again and again.
// max bounds the unpacked size.
func unpackArchive(p string, max int64) (opener, error) {
	src, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	r, err := decompress(bufio.NewReader(src))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	tmp, err := os.CreateTemp("", "taskguard-archive-*.tar")
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", p, err)
	}
	// Unlinked at once: the open descriptor keeps the data readable.
	if err := os.Remove(tmp.Name()); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("unpack %s: %w", p, err)
	}
	n, err := io.Copy(tmp, io.LimitReader(r, max+1))
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("unpack %s (corrupt or truncated archive): %w", p, err)
	}
	if n > max {
		tmp.Close()
		return nil, fmt.Errorf("unpack %s: %w: more than %d bytes uncompressed", p, ErrLayerTooLarge, max)
	}
	return func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(tmp, 0, n)), nil
	}, nil
}
