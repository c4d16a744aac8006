package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns the layer tar stream of a blob that is gzip, zstd or
// plain tar, recognised by its first bytes. A gzip stream is inflated
// ahead in a goroutine: Close the result before reading r further. A large
// gzip blob that can be read at any offset (a layer in an archive file) is
// inflated in parallel (pgunzip.go).
func decompress(r io.Reader) (io.ReadCloser, error) {
	if blob, ok := r.(seekableBlob); ok {
		if pr := newPgzReader(blob); pr != nil {
			// The blob is read at offsets: leave its stream at the end, so
			// that a caller reading it to its end reads nothing more.
			if s, ok := r.(io.Seeker); ok {
				if _, err := s.Seek(0, io.SeekEnd); err != nil {
					pr.Close()
					return nil, fmt.Errorf("read layer: %w", err)
				}
			}
			return pr, nil
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read layer (corrupt or truncated layer): %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := newGzipReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip layer (corrupt or truncated layer): %w", err)
		}
		if noReadahead {
			return &gzipTar{zr}, nil
		}
		return newReadahead(&gzipTar{zr}, zr), nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd layer (corrupt or truncated layer): %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// noReadahead turns the gzip read-ahead off (benchmarks compare both).
var noReadahead = false

// newGzipReader returns the inflater of gzip layers: klauspost/compress's
// (pure Go) by default, ISA-L's in a build with the isal tag (isal.go).
// Like gzip.NewReader it reads the stream's first bytes, and reads every
// member of a multi-member stream.
var newGzipReader = func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }

// gzipInflater names the inflater newGzipReader returns ("go" or "isal").
var gzipInflater = "go"

// GzipInflater names the inflater gzip layers go through: "go"
// (klauspost/compress, the default build) or "isal" (ISA-L, a build with
// the isal tag).
func GzipInflater() string { return gzipInflater }

// gzipTar reports a bad gzip stream as a corrupt layer.
type gzipTar struct{ io.ReadCloser }

func (g *gzipTar) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("gzip: %w", err)
	}
	return n, err
}

// DefaultMaxLayerSize bounds the uncompressed size of one layer when
// Options.MaxLayerSize is zero: beyond it the layer is taken for a
// decompression bomb.
const DefaultMaxLayerSize = 64 << 30

// ErrLayerTooLarge is returned when a layer unpacks to more than the limit.
var ErrLayerTooLarge = errors.New("layer too large")

// guardReader stops a layer stream at a size limit and when ctx ends, even
// in the middle of a huge file entry.
type guardReader struct {
	ctx  context.Context
	r    io.Reader
	n    int64
	max  int64
	next int64
}

func newGuardReader(ctx context.Context, r io.Reader, max int64) *guardReader {
	return &guardReader{ctx: ctx, r: r, max: max}
}

func (g *guardReader) Read(p []byte) (int, error) {
	if g.n >= g.next {
		if err := g.ctx.Err(); err != nil {
			return 0, err
		}
		g.next = g.n + 8<<20
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	if g.n > g.max {
		return n, fmt.Errorf("%w: more than %d bytes uncompressed", ErrLayerTooLarge, g.max)
	}
	return n, err
}
