//go:build isal && cgo

package image

/*
#cgo pkg-config: libisal
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/igzip_lib.h>

// tg_isal_new allocates an inflate state in C memory: it points at the
// caller's buffers during a call, and Go memory must not hold Go pointers
// handed to C.
static struct inflate_state *tg_isal_new(void) {
	struct inflate_state *s = malloc(sizeof(struct inflate_state));
	if (s == NULL) {
		return NULL;
	}
	isal_inflate_init(s);
	s->crc_flag = ISAL_GZIP;
	return s;
}

// tg_isal_reset starts the next gzip member.
static void tg_isal_reset(struct inflate_state *s) {
	isal_inflate_reset(s);
	s->crc_flag = ISAL_GZIP;
}

// tg_isal_inflate inflates from in into out and reports how much of each
// it used and whether the member ended (its trailer checked). It leaves no
// pointer to in or out in s.
static int tg_isal_inflate(struct inflate_state *s, uint8_t *in, uint32_t in_len,
		uint8_t *out, uint32_t out_len, uint32_t *used, uint32_t *made, int *finished) {
	s->next_in = in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int ret = isal_inflate(s);
	*used = in_len - s->avail_in;
	*made = out_len - s->avail_out;
	*finished = s->block_state == ISAL_BLOCK_FINISH;
	s->next_in = NULL;
	s->avail_in = 0;
	s->next_out = NULL;
	s->avail_out = 0;
	return ret;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// With the isal build tag, gzip layers are inflated by ISA-L's igzip
// (libisal), ~2x faster than the pure-Go inflater on this work.
func init() {
	newGzipReader = newIsalReader
	gzipInflater = "isal"
}

// isalInSize is how much compressed input is read at a time.
const isalInSize = 256 << 10

// isalReader inflates a gzip stream (one member or several, like
// gzip.Reader in its default multistream mode) with ISA-L. ISA-L parses
// each member's header and checks its trailer (CRC-32 and size).
type isalReader struct {
	src      io.Reader
	state    *C.struct_inflate_state
	in       []byte
	start    int // unused input is in[start:end]
	end      int
	srcErr   error // from src, after in[start:end]
	finished bool  // the member ended; what follows is a new member or the end
	err      error
}

func newIsalReader(r io.Reader) (io.ReadCloser, error) {
	s := C.tg_isal_new()
	if s == nil {
		return nil, errors.New("isal: out of memory")
	}
	z := &isalReader{src: r, state: s, in: make([]byte, isalInSize)}
	// Like gzip.NewReader, fail at once on an empty stream or one that
	// does not start like gzip.
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

// errGzipHeader is what an isal reader returns for a stream that is not
// gzip where a member should start.
var errGzipHeader = errors.New("invalid gzip header")

// fill reads more input when none is left; it returns src's error once
// the input is used up.
func (z *isalReader) fill() error {
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

func (z *isalReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.state == nil {
		return 0, errReadaheadClosed
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
					z.err = io.EOF
				} else {
					z.err = err
				}
				return 0, z.err
			}
			C.tg_isal_reset(z.state)
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
		var used, made C.uint32_t
		var fin C.int
		out := p
		if len(out) > 1<<30 {
			out = out[:1<<30]
		}
		ret := C.tg_isal_inflate(z.state,
			(*C.uint8_t)(unsafe.Pointer(&z.in[z.start])), C.uint32_t(z.end-z.start),
			(*C.uint8_t)(unsafe.Pointer(&out[0])), C.uint32_t(len(out)),
			&used, &made, &fin)
		z.start += int(used)
		if ret < 0 {
			z.err = isalError(int(ret))
			return int(made), z.err
		}
		if fin != 0 {
			z.finished = true
		}
		if made > 0 {
			return int(made), nil
		}
		if used == 0 && fin == 0 {
			// Neither input taken nor output made with both available:
			// ISA-L cannot go on (never seen; guards against a loop).
			z.err = errors.New("isal: inflate made no progress")
			return 0, z.err
		}
	}
}

// isalError names an ISA-L inflate error.
func isalError(ret int) error {
	switch ret {
	case C.ISAL_INVALID_BLOCK:
		return errors.New("isal: invalid deflate block")
	case C.ISAL_INVALID_SYMBOL:
		return errors.New("isal: invalid deflate symbol")
	case C.ISAL_INVALID_LOOKBACK:
		return errors.New("isal: invalid back-reference distance")
	case C.ISAL_INVALID_WRAPPER:
		return fmt.Errorf("isal: %w", errGzipHeader)
	case C.ISAL_UNSUPPORTED_METHOD:
		return errors.New("isal: gzip compression method is not deflate")
	case C.ISAL_INCORRECT_CHECKSUM:
		return errors.New("isal: gzip checksum or size mismatch")
	}
	return fmt.Errorf("isal: inflate error %d", ret)
}

// Close frees the inflate state; Read afterwards fails.
func (z *isalReader) Close() error {
	if z.state != nil {
		C.free(unsafe.Pointer(z.state))
		z.state = nil
	}
	return nil
}
