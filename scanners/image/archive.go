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
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// opener opens a docker archive (a plain tar) from its start.
type opener func() (io.ReadCloser, error)

// fileOpener opens the archive file at p.
func fileOpener(p string) opener {
	return func() (io.ReadCloser, error) { return os.Open(p) }
}

// yieldingOpener is open whose readers call runtime.Gosched after every
// read: a background reader that gives way to the other goroutines ready
// to run (a read of the archive is 32 KiB or less when ggcr hashes it).
func yieldingOpener(open opener) opener {
	return func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		if s, ok := rc.(io.Seeker); ok {
			// tar skips the entries it passes over by seeking.
			return &yieldingSeeker{yieldingReader{rc}, s}, nil
		}
		return &yieldingReader{rc}, nil
	}
}

type yieldingReader struct{ io.ReadCloser }

func (y *yieldingReader) Read(p []byte) (int, error) {
	n, err := y.ReadCloser.Read(p)
	runtime.Gosched()
	return n, err
}

type yieldingSeeker struct {
	yieldingReader
	s io.Seeker
}

func (y *yieldingSeeker) Seek(off int64, whence int) (int64, error) { return y.s.Seek(off, whence) }

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
			if e := seekableEntry(f, hdr); e != nil {
				return e, nil
			}
			return struct {
				io.Reader
				io.Closer
			}{tr, f}, nil
		}
	}
}

// archiveEntry is an entry of an archive file that can also be read at
// any offset (so that a gzip layer can be inflated in parallel).
type archiveEntry struct {
	*io.SectionReader
	io.Closer
}

// seekableEntry returns the entry whose header tar just read as a section
// of the archive, when the archive can be read at any offset: tar leaves
// the archive at the entry's first byte. Entries whose bytes are not
// stored in one piece (sparse files) are not.
func seekableEntry(f io.ReadCloser, hdr *tar.Header) *archiveEntry {
	ra, ok := f.(interface {
		io.ReaderAt
		io.Seeker
	})
	if !ok || hdr.Typeflag != tar.TypeReg || hdr.Size < 0 {
		return nil
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return nil
		}
	}
	pos, err := ra.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil
	}
	return &archiveEntry{io.NewSectionReader(ra, pos, hdr.Size), f}
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
		return nopCloseSection{io.NewSectionReader(tmp, 0, n)}, nil
	}, nil
}

// nopCloseSection is a section of the unpacked archive; closing it leaves
// the file open for the next reader.
type nopCloseSection struct{ *io.SectionReader }

func (nopCloseSection) Close() error { return nil }
