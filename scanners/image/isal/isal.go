//go:build linux && (amd64 || arm64) && !nodlopen

package isal

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/taskguard/taskguard/scanners/image"
)

// DefaultLibrary is the library loaded when TASKGUARD_ISAL_LIBRARY is unset.
const DefaultLibrary = "libisal.so.2"

// EnvLibrary names the environment variable that overrides DefaultLibrary
// ("off": no ISA-L).
const EnvLibrary = "TASKGUARD_ISAL_LIBRARY"

func init() {
	image.RegisterGzipInflater(func() (string, func(io.Reader) (io.ReadCloser, error), error) {
		name := LibraryName()
		if name == "off" {
			return "", nil, errors.New(EnvLibrary + "=off")
		}
		lib, err := Load(name)
		if err != nil {
			return "", nil, err
		}
		return "isal", lib.NewReader, nil
	})
}

// LibraryName is the library the registered inflater loads: $EnvLibrary,
// or DefaultLibrary ("off": none).
func LibraryName() string {
	if name := os.Getenv(EnvLibrary); name != "" {
		return name
	}
	return DefaultLibrary
}

// The layout of struct inflate_state in libisal.so.2 (isa-l/igzip_lib.h
// of ISA-L 2.x; the library's ABI, since callers allocate the state). Its
// members are pointers and fixed-size integers, so it is the same on
// linux/amd64 and linux/arm64 (LP64). Load checks it with a self-test.
const (
	offNextOut    = 0     // uint8_t *next_out
	offAvailOut   = 8     // uint32_t avail_out
	offNextIn     = 16    // uint8_t *next_in
	offAvailIn    = 32    // uint32_t avail_in
	offBlockState = 21160 // enum isal_block_state block_state
	offCRCFlag    = 21172 // uint32_t crc_flag
	stateSize     = 87368 // sizeof(struct inflate_state) in ISA-L 2.30

	// stateAlloc is what is allocated for a state: room to spare, so that
	// a somewhat larger struct in a later library writes only into it.
	stateAlloc = 128 << 10

	isalGzip         = 1 // crc_flag ISAL_GZIP: parse the gzip header, check the trailer
	isalBlockFinish  = 5 // block_state ISAL_BLOCK_FINISH: the member ended
	isalInvalidBlock = -1
	isalInvalidSym   = -2
	isalInvalidLook  = -3
	isalInvalidWrap  = -4
	isalUnsupMethod  = -5
	isalBadChecksum  = -6
)

// A state allocation smaller than the struct does not compile.
var _ [stateAlloc - stateSize]byte

// Library is a loaded libisal.
type Library struct {
	name                               string
	inflateInit, inflateReset, inflate uintptr
}

// Load opens the ISA-L library name (a soname or a path), finds its
// inflate functions and checks that it inflates gzip as this package
// expects (the state's layout) on a known stream. The library stays
// loaded for the life of the process.
func Load(name string) (*Library, error) {
	h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("isal: load %s: %w", name, err)
	}
	l := &Library{name: name}
	for _, s := range []struct {
		name string
		fn   *uintptr
	}{{"isal_inflate_init", &l.inflateInit}, {"isal_inflate_reset", &l.inflateReset}, {"isal_inflate", &l.inflate}} {
		if *s.fn, err = purego.Dlsym(h, s.name); err != nil {
			return nil, fmt.Errorf("isal: %s: %w", name, err)
		}
	}
	if err := l.selfTest(); err != nil {
		return nil, fmt.Errorf("isal: %s failed its self-test (not the ISA-L 2.x inflate ABI?): %w", name, err)
	}
	return l, nil
}

// Name is the library's name as given to Load.
func (l *Library) Name() string { return l.name }

// selfTest inflates a two-member stream and the same with a bad CRC, and
// compares with compress/gzip: a state laid out differently than this
// package expects fails here (no gzip parsing, no end of member, no
// checksum), not on a layer.
func (l *Library) selfTest() error {
	var plain bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&plain, "line %d of the self-test %x\n", i, i*i*2654435761)
	}
	var z bytes.Buffer
	for _, part := range [][]byte{plain.Bytes(), []byte("second member")} {
		zw := gzip.NewWriter(&z)
		zw.Name = "selftest"
		zw.Write(part)
		zw.Close()
	}
	want := append(plain.Bytes(), "second member"...)
	r, err := l.NewReader(bytes.NewReader(z.Bytes()))
	if err != nil {
		return err
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("inflated %d bytes unlike compress/gzip's %d", len(got), len(want))
	}
	bad := bytes.Clone(z.Bytes())
	bad[len(bad)-6] ^= 1 // the second member's CRC-32
	r, err = l.NewReader(bytes.NewReader(bad))
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if err == nil {
		return errors.New("a bad CRC-32 was not detected")
	}
	return nil
}

// inSize is how much compressed input is read at a time.
const inSize = 256 << 10

// maxOut bounds the output of one inflate call (avail_out is 32 bits).
const maxOut = 1 << 30

// reader inflates a gzip stream (one member or several, like gzip.Reader
// in its default multistream mode) with ISA-L, which parses each member's
// header and checks its trailer (CRC-32 and size). Memory: the state and
// the input buffer, whatever the stream inflates to.
type reader struct {
	lib      *Library
	src      io.Reader
	state    []uint64 // struct inflate_state, in Go memory (not moved)
	in       []byte
	start    int // unused input is in[start:end]
	end      int
	srcErr   error // from src, after in[start:end]
	finished bool  // the member ended; what follows is a new member or the end
	err      error
	pin      runtime.Pinner
}

// errGzipHeader is returned for a stream that is not gzip where a member
// should start.
var errGzipHeader = errors.New("invalid gzip header")

// errClosed is returned by Read after Close.
var errClosed = errors.New("isal: read after close")

// NewReader returns a reader of the gzip stream r, like gzip.NewReader:
// it fails at once on an empty stream (io.EOF) or one that does not start
// like gzip.
func (l *Library) NewReader(r io.Reader) (io.ReadCloser, error) {
	z := &reader{lib: l, src: r, state: make([]uint64, stateAlloc/8), in: make([]byte, inSize)}
	purego.SyscallN(l.inflateInit, uintptr(unsafe.Pointer(&z.state[0])))
	z.setU32(offCRCFlag, isalGzip)
	if err := z.fill(); err != nil && z.start == z.end {
		z.Close()
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if z.end-z.start >= 2 && (z.in[z.start] != 0x1f || z.in[z.start+1] != 0x8b) {
		z.Close()
		return nil, fmt.Errorf("isal: %w", errGzipHeader)
	}
	return z, nil
}

func (z *reader) field(off uintptr) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(&z.state[0]), off)
}
func (z *reader) setU32(off uintptr, v uint32) { *(*uint32)(z.field(off)) = v }
func (z *reader) u32(off uintptr) uint32       { return *(*uint32)(z.field(off)) }
func (z *reader) setPtr(off uintptr, p unsafe.Pointer) {
	*(*uintptr)(z.field(off)) = uintptr(p)
}

// fill reads more input when none is left; it returns src's error once
// the input is used up.
func (z *reader) fill() error {
	if z.start < z.end {
		return nil
	}
	if z.srcErr != nil {
		return z.srcErr
	}
	z.start, z.end = 0, 0
	for z.end == 0 && z.srcErr == nil {
		z.end, z.srcErr = z.src.Read(z.in)
	}
	if z.end > 0 {
		return nil
	}
	return z.srcErr
}

// inflate runs isal_inflate from z.in[z.start:z.end] into out: the bytes
// of input used and output made, whether the member ended, ISA-L's code.
func (z *reader) inflate(out []byte) (used, made int, finished bool, ret int32) {
	in := z.in[z.start:z.end]
	// The state holds the buffers' addresses during the call: pinned (and
	// so on the heap) until it returns, cleared afterwards.
	z.pin.Pin(&in[0])
	z.pin.Pin(&out[0])
	z.setPtr(offNextIn, unsafe.Pointer(&in[0]))
	z.setU32(offAvailIn, uint32(len(in)))
	z.setPtr(offNextOut, unsafe.Pointer(&out[0]))
	z.setU32(offAvailOut, uint32(len(out)))
	r1, _, _ := purego.SyscallN(z.lib.inflate, uintptr(unsafe.Pointer(&z.state[0])))
	used = len(in) - int(z.u32(offAvailIn))
	made = len(out) - int(z.u32(offAvailOut))
	finished = z.u32(offBlockState) == isalBlockFinish
	z.setPtr(offNextIn, nil)
	z.setU32(offAvailIn, 0)
	z.setPtr(offNextOut, nil)
	z.setU32(offAvailOut, 0)
	z.pin.Unpin()
	return used, made, finished, int32(r1)
}

func (z *reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.state == nil {
		return 0, errClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if z.finished {
			// Between members: the end of input ends the stream; anything
			// else must be another member.
			if err := z.fill(); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.EOF
				}
				z.err = err
				return 0, err
			}
			purego.SyscallN(z.lib.inflateReset, uintptr(unsafe.Pointer(&z.state[0])))
			z.setU32(offCRCFlag, isalGzip)
			z.finished = false
		}
		if err := z.fill(); err != nil && z.start == z.end {
			if errors.Is(err, io.EOF) {
				// The input ends inside a member (or before any).
				err = io.ErrUnexpectedEOF
			}
			z.err = err
			return 0, err
		}
		out := p
		if len(out) > maxOut {
			out = out[:maxOut]
		}
		used, made, fin, ret := z.inflate(out)
		if used < 0 || used > z.end-z.start || made < 0 || made > len(out) {
			z.err = fmt.Errorf("isal: inflate reported %d bytes used of %d, %d made of %d", used, z.end-z.start, made, len(out))
			return 0, z.err
		}
		z.start += used
		if ret < 0 {
			z.err = inflateError(ret)
			return made, z.err
		}
		if fin {
			z.finished = true
		}
		if made > 0 {
			return made, nil
		}
		if used == 0 && !fin {
			// Neither input taken nor output made with both available:
			// ISA-L cannot go on (never seen; guards against a loop).
			z.err = errors.New("isal: inflate made no progress")
			return 0, z.err
		}
	}
}

// inflateError names an ISA-L inflate error.
func inflateError(ret int32) error {
	switch ret {
	case isalInvalidBlock:
		return errors.New("isal: invalid deflate block")
	case isalInvalidSym:
		return errors.New("isal: invalid deflate symbol")
	case isalInvalidLook:
		return errors.New("isal: invalid back-reference distance")
	case isalInvalidWrap:
		return fmt.Errorf("isal: %w", errGzipHeader)
	case isalUnsupMethod:
		return errors.New("isal: gzip compression method is not deflate")
	case isalBadChecksum:
		// The Go inflater's error, so both read and match alike
		// (errors.Is(err, gzip.ErrChecksum)), with who found it.
		return fmt.Errorf("%w (CRC-32 or size in the trailer; ISA-L)", gzip.ErrChecksum)
	}
	return fmt.Errorf("isal: inflate error %d", ret)
}

// Close releases the state (ISA-L holds no memory of its own for it);
// Read afterwards fails.
func (z *reader) Close() error {
	z.state = nil
	z.in = nil
	return nil
}
