package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

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
		return nil, fmt.Errorf("read layer (%s): %w", readFailure(err), err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := newGzipReader(br)
		if err != nil {
			return nil, fmt.Errorf("read header (%s): %w", readFailure(err), gzipErr(err))
		}
		if noReadahead {
			return &gzipTar{zr}, nil
		}
		return newReadahead(&gzipTar{zr}, zr), nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("read header (%s): %w", readFailure(err), prefixErr("zstd", err))
		}
		return &zstdTar{zr.IOReadCloser()}, nil
	}
	return io.NopCloser(br), nil
}

// noReadahead turns the gzip read-ahead off (benchmarks compare both).
var noReadahead = false

// newGzipReader returns a reader of the gzip stream r through the chosen
// inflater (chooseGzipInflater). Like gzip.NewReader it reads the stream's
// first bytes, and reads every member of a multi-member stream.
func newGzipReader(r io.Reader) (io.ReadCloser, error) {
	chooseGzipInflater()
	return gzipInflater.newReader(r)
}

// goGzipReader is the pure-Go inflater (klauspost/compress).
func goGzipReader(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }

// GzipInflaterLoader loads a faster gzip inflater: it returns the
// inflater's name and its reader constructor (which must behave as
// gzip.NewReader: read every member, check every trailer, fail on bad
// input with an error), or an error saying why it is not available.
type GzipInflaterLoader func() (name string, newReader func(io.Reader) (io.ReadCloser, error), err error)

var (
	inflaterMu     sync.Mutex
	inflaterLoader GzipInflaterLoader
	inflaterChosen bool
	// gzipInflater is the inflater gzip layers go through once chosen.
	gzipInflater = struct {
		name      string
		newReader func(io.Reader) (io.ReadCloser, error)
	}{"go", goGzipReader}
)

// RegisterGzipInflater installs a faster gzip inflater, tried once, when
// the first gzip layer is read: if load fails, layers go
// through the pure-Go inflater. Package scanners/image/isal registers
// ISA-L's (loaded at run time, without cgo) from its init function; a
// program imports that package to use it. Call it before any scan.
func RegisterGzipInflater(load GzipInflaterLoader) {
	inflaterMu.Lock()
	defer inflaterMu.Unlock()
	inflaterLoader = load
}

// inflaterLogger is the logger of the first image opened: the choice of
// the inflater, made when the first gzip layer is read, is logged there.
var inflaterLogger *slog.Logger

// noteInflaterLogger remembers logger for the choice's debug line, unless
// an earlier image's was remembered. Nothing is loaded yet: a scan that
// inflates nothing (every layer cached) does not load a library.
func noteInflaterLogger(logger *slog.Logger) {
	inflaterMu.Lock()
	defer inflaterMu.Unlock()
	if inflaterLogger == nil {
		inflaterLogger = logger
	}
}

// chooseGzipInflater picks the inflater once per process and logs at
// debug level (to the first image's logger, or slog.Default()) which one
// it is and, when a registered one could not be loaded, why.
func chooseGzipInflater() {
	inflaterMu.Lock()
	defer inflaterMu.Unlock()
	if inflaterChosen {
		return
	}
	inflaterChosen = true
	logger := inflaterLogger
	if logger == nil {
		logger = slog.Default()
	}
	if inflaterLoader == nil {
		logger.Debug("gzip layers are inflated in Go", "inflater", "go")
		return
	}
	name, newReader, err := inflaterLoader()
	if err != nil {
		logger.Debug("gzip layers are inflated in Go: the faster inflater is not available", "inflater", "go", "err", err)
		return
	}
	gzipInflater.name, gzipInflater.newReader = name, newReader
	logger.Debug("gzip layers are inflated by "+name, "inflater", name)
}

// GzipInflater names the inflater gzip layers go through: "go"
// (klauspost/compress) or the name of the one registered with
// RegisterGzipInflater when it loaded ("isal": ISA-L). It makes the choice
// if no gzip layer was read yet.
func GzipInflater() string {
	chooseGzipInflater()
	inflaterMu.Lock()
	defer inflaterMu.Unlock()
	return gzipInflater.name
}

// gzipTar reports a bad gzip stream as a corrupt layer.
type gzipTar struct{ io.ReadCloser }

func (g *gzipTar) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err != io.EOF {
		err = gzipErr(err)
	}
	return n, err
}

// zstdTar reports a bad zstd stream as a corrupt layer.
type zstdTar struct{ io.ReadCloser }

func (z *zstdTar) Read(p []byte) (int, error) {
	n, err := z.ReadCloser.Read(p)
	if err != io.EOF {
		err = prefixErr("zstd", err)
	}
	return n, err
}

// prefixedError names the format whose stream is bad ("gzip: ") once:
// the errors of compress/gzip and klauspost/compress/gzip already start
// with "gzip: " (gzip.ErrChecksum is "gzip: invalid checksum"), the
// others (flate's, io.ErrUnexpectedEOF, an inflater's) do not.
type prefixedError struct {
	prefix string // "gzip: "
	err    error
}

func (e *prefixedError) Error() string {
	s := e.err.Error()
	if strings.HasPrefix(s, e.prefix) {
		return s
	}
	return e.prefix + s
}

func (e *prefixedError) Unwrap() error { return e.err }

// prefixErr returns err named as an error of the format ("gzip"): its
// text starts with "gzip: " once. nil stays nil.
func prefixErr(format string, err error) error {
	if err == nil {
		return nil
	}
	return &prefixedError{prefix: format + ": ", err: err}
}

// gzipErr is prefixErr("gzip", err).
func gzipErr(err error) error { return prefixErr("gzip", err) }

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

// readFailure names why a layer read failed, for its error: a read the
// caller's context ended (a --timeout, a cancel) says so, anything else is
// the layer's fault.
func readFailure(err error) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return "corrupt or truncated layer"
}
