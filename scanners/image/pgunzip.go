package image

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// Parallel inflating of one gzip stream held in a file (a docker archive's
// layer), the way rapidgzip does it: the deflate stream is cut into chunks
// of pgzChunk compressed bytes; a worker per core decodes each chunk from
// the first deflate block that seems to start in it, with an unknown
// 32 KiB window, while the chunks before it are still being decoded.
//
// Nothing speculative reaches the caller unchecked:
//   - every chunk is decoded by klauspost/compress/flate, which reports the
//     exact bit at which each block ends; a chunk's output is used only if
//     it started exactly where the previous chunk's true parse ended a block
//     (the previous chunk stops at its first block end past the cut), so
//     the stream is parsed exactly as a sequential inflater parses it;
//   - bytes copied from the unknown window are found by decoding the
//     chunk's start twice, with windows that tell window bytes from
//     the others and name their position, and are filled in from the real
//     window once the previous chunk is known;
//   - the gzip trailer's CRC-32 and size are checked over the whole output.
//
// On anything unexpected (no block start found, a mismatch, a chunk that
// inflates beyond pgzMaxChunkOut, a window reference beyond the data) the
// chunk is inflated sequentially from the last verified block end: a
// hostile stream costs at most the wasted speculation, and that is bounded
// per chunk (pgzMaxHeaders, pgzMaxCandidates, pgzMaxTrialOut,
// pgzMaxAttempts). Once pgzMaxBoundedChunks chunks' searches reached a
// bound, the speculation stops: the rest of the stream is inflated
// sequentially.
const (
	pgzMaxChunkOut = 64 << 20 // a chunk inflating to more is left to the sequential path
	pgzWindow      = 32 << 10
	// pgzMaxDerivedRun: a chunk whose bytes still come from the unknown
	// window this far in is left to the sequential path.
	pgzMaxDerivedRun = 4 << 20

	// Bounds of the block-start search of one chunk (speculate). A real
	// stream's first candidate is as a rule its next block (see
	// TestPgunzipSearchBound for the counts measured); a stream made to
	// look like block starts everywhere (stored data holding deflate
	// blocks, say) would otherwise cost up to a million candidates per
	// chunk, each decoded up to 1 MiB, then tried up to pgzMaxChunkOut.
	//
	// pgzMaxHeaders: dynamic block headers decoded in full (the cheap
	// 64-bit test passed).
	pgzMaxHeaders = 4096
	// pgzMaxCandidates: headers that passed, decoded one block on
	// (plausible).
	pgzMaxCandidates = 32
	// pgzMaxTrialOut: bytes plausible may inflate in all.
	pgzMaxTrialOut = 4 << 20
	// pgzMaxAttempts: candidates decoded as the chunk (speculateAt),
	// inflating pgzMaxChunkOut bytes in all (what one chunk may inflate).
	pgzMaxAttempts = 4
	// pgzMaxBoundedChunks: once this many chunks' searches reached a
	// bound, nothing more is speculated: the rest of the stream is
	// inflated sequentially. (A real stream's chunk can reach one: a
	// region that keeps copying from before the chunk fails every
	// attempt with "window references too far into the chunk".)
	pgzMaxBoundedChunks = 3
)

var (
	// errSearchBound: a chunk's block-start search reached a bound.
	errSearchBound = errors.New("block-start search bound reached")
	// errDerivedRun: bytes decoded from a block start still came from
	// the unknown window pgzMaxDerivedRun bytes on. The later block
	// starts of the chunk, in the same stretch, fail alike: the search
	// ends there.
	errDerivedRun = errors.New("window references too far into the chunk")
)

// pgzStats counts the speculative work of one stream (the tests check
// its bounds).
type pgzStats struct {
	bits       atomic.Int64 // bit positions examined
	headers    atomic.Int64 // dynamic headers decoded in full
	candidates atomic.Int64 // plausible calls
	trialOut   atomic.Int64 // bytes plausible inflated
	attempts   atomic.Int64 // speculateAt calls
	attemptOut atomic.Int64 // bytes they inflated
	bounds     atomic.Int64 // searches that reached a bound
	rejected   atomic.Int64 // chunks decoded from a block start that was not the stream's
	// The most one chunk's search took of each.
	maxBits, maxHeaders, maxCandidates, maxTrialOut, maxAttempts, maxAttemptOut atomic.Int64
}

func atomicMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// Variables so that tests can use small chunks.
var (
	pgzChunk   int64 = 1 << 20 // compressed bytes per chunk
	pgzMinSize int64 = 8 << 20 // smaller streams are inflated sequentially
	// pgzDisabled: parallel inflating is off unless
	// TASKGUARD_PARALLEL_GUNZIP=1 (see the package README: it costs
	// about half again the CPU and ~30 MiB for a gain only when a core is
	// idle).
	pgzDisabled = os.Getenv("TASKGUARD_PARALLEL_GUNZIP") != "1"
)

// seekableBlob is a layer blob that can be read at any offset.
type seekableBlob interface {
	io.ReaderAt
	Size() int64
}

// pgzChunkResult is a decoded chunk: out holds its bytes, with the ones
// copied from the unknown window (derived) still to fill in.
type pgzChunkResult struct {
	start, end int64 // bit offsets: where decoding started, where its last block ended
	final      bool  // the chunk ended with the stream's final block
	trailer    int64 // byte offset of the gzip trailer (final only)
	out        []byte
	derived    []derivedByte
	err        error // speculation failed; not an error of the stream
}

type derivedByte struct {
	at  int32
	win uint16 // index in the 32 KiB window before the chunk
}

// parseGzipHeader returns the offset of the deflate stream after the gzip
// member header at the start of b, or an error.
func parseGzipHeader(b []byte) (int, error) {
	if len(b) < 10 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
		return 0, gzip.ErrHeader
	}
	flg := b[3]
	p := 10
	if flg&0x04 != 0 { // FEXTRA
		if len(b) < p+2 {
			return 0, gzip.ErrHeader
		}
		p += 2 + int(binary.LittleEndian.Uint16(b[p:]))
	}
	for _, bit := range []byte{0x08, 0x10} { // FNAME, FCOMMENT
		if flg&bit != 0 {
			if p > len(b) {
				return 0, gzip.ErrHeader
			}
			i := bytes.IndexByte(b[p:], 0)
			if i < 0 {
				return 0, gzip.ErrHeader
			}
			p += i + 1
		}
	}
	if flg&0x02 != 0 { // FHCRC
		p += 2
	}
	if flg&0xe0 != 0 || p > len(b) {
		return 0, gzip.ErrHeader
	}
	return p, nil
}

// blockDecoder inflates from a bit offset of the blob, with a given
// window, up to the first block end at or after a limit (io.EOF there) or
// to the stream's final block (final is then set, with the trailer's
// offset).
type blockDecoder struct {
	rc      io.ReadCloser
	sec     *io.SectionReader
	br      *bufio.Reader
	base    int64 // byte offset of sec in the blob
	limit   int64
	endBit  int64 // the first block end >= limit, -1 before it is seen
	endOut  int64 // output bytes at endBit
	n       int64 // output bytes returned
	final   bool
	trailer int64
	skew    int64 // bytes flate's offsets run ahead (see the callback)
	bad     bool  // offsets not understood: the stop is never found
}

func newBlockDecoder(blob io.ReaderAt, size, startBit int64, window []byte, limit int64) *blockDecoder {
	base := startBit / 8
	d := &blockDecoder{base: base, limit: limit, endBit: -1}
	d.sec = io.NewSectionReader(blob, base, size-base)
	d.br = bufio.NewReaderSize(d.sec, 64<<10)
	cp := flate.InflateCheckpoint{CompressedOffset: base, BitOffset: uint8(startBit & 7), Window: window}
	d.rc = flate.NewReaderOpts(d.br, flate.WithResumeFrom(cp), flate.WithPartialBlock(),
		flate.WithEobCallback(func(cp flate.InflateCheckpoint) {
			if d.endBit >= 0 || d.bad || cp.Final {
				return // the final block ends in io.EOF
			}
			// flate's reported offset runs ahead by the whole bytes it
			// held in its bit buffer at each stored block (it counts them
			// twice). What it consumed from br is exact: a block end is
			// at most 31 bits before it, exactly at it after a stored
			// block, so the skew is what the report exceeds it by there.
			pos, _ := d.sec.Seek(0, io.SeekCurrent)
			consumed := d.base + pos - int64(d.br.Buffered())
			rep := cp.CompressedOffset*8 + int64(cp.BitOffset)
			if diff := rep - consumed*8; diff > d.skew*8 {
				if diff%8 != 0 {
					d.bad = true
					return
				}
				d.skew = diff / 8
			}
			if bit := rep - d.skew*8; bit >= d.limit {
				d.endBit, d.endOut = bit, cp.UncompressedOffset
			}
		}))
	return d
}

func (d *blockDecoder) Read(p []byte) (int, error) {
	if d.endBit >= 0 && d.n >= d.endOut {
		return 0, io.EOF
	}
	n, err := d.rc.Read(p)
	if d.endBit >= 0 && d.n+int64(n) >= d.endOut {
		// The stop block ended inside this read: what follows it is the
		// next chunk's.
		n = int(d.endOut - d.n)
		d.n += int64(n)
		return n, io.EOF
	}
	d.n += int64(n)
	if err == io.EOF {
		d.final = true
		pos, _ := d.sec.Seek(0, io.SeekCurrent)
		d.trailer = d.base + pos - int64(d.br.Buffered())
	}
	return n, err
}

// The windows a chunk's start is decoded with: window0 holds the low
// byte of each position, window1 that plus the high byte plus one, which
// never equals it (positions are below 1<<15). A byte the two decoders
// give differently came from the window, and the two bytes name its
// position; bytes both give alike did not.
var (
	pgzWindowsOnce   sync.Once
	pgzWin0, pgzWin1 []byte
)

func pgzWindows() ([]byte, []byte) {
	pgzWindowsOnce.Do(func() {
		pgzWin0, pgzWin1 = make([]byte, pgzWindow), make([]byte, pgzWindow)
		for j := range pgzWindow {
			pgzWin0[j], pgzWin1[j] = byte(j), byte(j)+byte(j>>8)+1
		}
	})
	return pgzWin0, pgzWin1
}

// windowIndex is the window position of a byte decoded as a with window0
// and b with window1.
func windowIndex(a, b byte) uint16 { return uint16(b-a-1)<<8 | uint16(a) }

// codeOrder is the order of the code length code lengths in a dynamic
// block header (RFC 1951 3.2.7).
var codeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// bitReader reads deflate's LSB-first bits from b.
type bitReader struct {
	b   []byte
	bit int
}

func (br *bitReader) get(n int) (int, bool) {
	if i := br.bit >> 3; i+8 <= len(br.b) { // n <= 56
		v := binary.LittleEndian.Uint64(br.b[i:]) >> (br.bit & 7)
		br.bit += n
		return int(v & (1<<n - 1)), true
	}
	v := 0
	for i := range n {
		p := br.bit + i
		if p/8 >= len(br.b) {
			return 0, false
		}
		v |= int(br.b[p/8]>>(p%8)&1) << i
	}
	br.bit += n
	return v, true
}

// kraft returns the Kraft sum of code lengths (up to 15) in units of
// 2^-15 and how many codes there are.
func kraft(lens []int) (sum, count int) {
	for _, l := range lens {
		if l > 0 {
			sum += 1 << (15 - l)
			count++
		}
	}
	return sum, count
}

// validCode reports whether lens is a complete prefix code, or a single
// code of one bit (what flate accepts).
func validCode(lens []int) bool {
	sum, count := kraft(lens)
	return sum == 1<<15 || (count == 1 && sum == 1<<14)
}

// blockStartCandidate reports whether a stored or dynamic deflate block
// could start at bit of b: its header is checked as flate would check
// it (for a dynamic block, every code), so that few false starts are
// left for a decoder to try.
func blockStartCandidate(b []byte, bit int) bool {
	ok, _ := blockStartCheck(b, bit)
	return ok
}

// blockStartCheck is blockStartCandidate; full reports whether a
// dynamic header was decoded in full (the costly part of the test).
func blockStartCheck(b []byte, bit int) (ok, full bool) {
	if i := (bit + 17) >> 3; i+8 <= len(b) {
		// Quick rejection from two 64-bit loads: the block type, HLIT,
		// HDIST, and the Kraft sum of the code length code.
		v := binary.LittleEndian.Uint64(b[bit>>3:]) >> (bit & 7)
		switch (v >> 1) & 3 {
		case 0:
		case 2:
			if (v>>3)&31 > 29 || (v>>8)&31 > 29 {
				return false, false
			}
			n := int((v>>13)&15) + 4
			c := binary.LittleEndian.Uint64(b[i:]) >> ((bit + 17) & 7)
			sum, count := 0, 0
			for k := range min(n, 18) {
				if l := (c >> (3 * k)) & 7; l > 0 {
					sum += 128 >> l
					count++
				}
			}
			if n == 19 {
				// The last length is checked below.
				if sum > 128 {
					return false, false
				}
			} else if sum != 128 && (count != 1 || sum != 64) {
				return false, false
			}
		default:
			return false, false
		}
	}
	br := &bitReader{b: b, bit: bit}
	hdr, ok := br.get(3)
	if !ok {
		return false, false
	}
	switch hdr >> 1 {
	case 0: // stored: LEN and its complement, byte aligned
		o := (br.bit + 7) / 8
		if o+4 > len(b) {
			return false, false
		}
		return binary.LittleEndian.Uint16(b[o:]) == ^binary.LittleEndian.Uint16(b[o+2:]), false
	case 2:
		return dynamicHeaderOK(br), true
	}
	return false, false
}

func dynamicHeaderOK(br *bitReader) bool {
	hlit, ok1 := br.get(5)
	hdist, ok2 := br.get(5)
	hclen, ok3 := br.get(4)
	if !ok1 || !ok2 || !ok3 || hlit > 29 || hdist > 29 {
		return false
	}
	nlit, ndist := hlit+257, hdist+1
	var clens [19]int
	for i := range hclen + 4 {
		v, ok := br.get(3)
		if !ok {
			return false
		}
		clens[codeOrder[i]] = v
	}
	if !validCode(clens[:]) {
		return false
	}
	// Canonical decoding of the code length code (as RFC 1951 3.2.2).
	var count [8]int
	for _, l := range clens {
		count[l]++
	}
	count[0] = 0
	var offs [8]int
	for l := 1; l < 8; l++ {
		offs[l] = offs[l-1] + count[l-1]
	}
	var sorted [19]int
	for sym, l := range clens {
		if l > 0 {
			sorted[offs[l]] = sym
			offs[l]++
		}
	}
	decode := func() (int, bool) {
		code, first, index := 0, 0, 0
		for l := 1; l < 8; l++ {
			v, ok := br.get(1)
			if !ok {
				return 0, false
			}
			code |= v
			if c := count[l]; code-c < first {
				return sorted[index+(code-first)], true
			} else {
				index += c
				first += c
				first <<= 1
				code <<= 1
			}
		}
		return 0, false
	}
	var lensArr [286 + 30]int
	lens := lensArr[:0]
	for len(lens) < nlit+ndist {
		sym, ok := decode()
		if !ok {
			return false
		}
		rep, val := 1, sym
		switch sym {
		case 16:
			if len(lens) == 0 {
				return false
			}
			v, ok := br.get(2)
			if !ok {
				return false
			}
			rep, val = 3+v, lens[len(lens)-1]
		case 17:
			v, ok := br.get(3)
			if !ok {
				return false
			}
			rep, val = 3+v, 0
		case 18:
			v, ok := br.get(7)
			if !ok {
				return false
			}
			rep, val = 11+v, 0
		}
		if len(lens)+rep > nlit+ndist {
			return false
		}
		for range rep {
			lens = append(lens, val)
		}
	}
	if lens[256] == 0 || !validCode(lens[:nlit]) {
		return false
	}
	if sum, count := kraft(lens[nlit:]); count > 0 && sum > 1<<15 {
		return false
	}
	return true
}

// pgzReader hands out the inflated stream in order.
type pgzReader struct {
	blob  io.ReaderAt
	size  int64
	start int64 // byte offset of the deflate stream

	crc    uint32
	n      int64
	window []byte // the last (up to) pgzWindow bytes handed out
	cur    []byte // what is left of the current chunk
	curBuf []byte // its buffer, recycled after it
	end    int64  // bit offset the verified parse has reached
	k      int    // the next chunk

	results  chan chan *pgzChunkResult
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	bufs     sync.Pool

	stats pgzStats

	seq   *blockDecoder // sequential inflating, after a fallback
	trail int64         // trailer offset, -1 until the final block
	rest  io.Reader     // the members after the first
	err   error
}

// chunkLimit is the bit offset chunk k decodes to (its first block end
// at or after it); the last chunk decodes to the final block.
func (r *pgzReader) chunkLimit(k int) int64 {
	from := r.start + int64(k+1)*pgzChunk
	if from >= r.size {
		return r.size*8 + 1
	}
	return from * 8
}

// newPgzReader starts inflating blob in parallel, or returns nil when the
// blob is small, only one core is there, or it does not start with a gzip
// header (the caller then inflates it sequentially).
func newPgzReader(blob seekableBlob) *pgzReader {
	size := blob.Size()
	workers := min(runtime.GOMAXPROCS(0), 4)
	if pgzDisabled || size < pgzMinSize || workers < 2 {
		return nil
	}
	head := make([]byte, 64<<10)
	n, _ := blob.ReadAt(head, 0)
	start, err := parseGzipHeader(head[:n])
	if err != nil {
		return nil
	}
	r := &pgzReader{
		blob: blob, size: size, start: int64(start), end: int64(start) * 8, trail: -1,
		results: make(chan chan *pgzChunkResult, workers-1),
		done:    make(chan struct{}),
	}
	nChunks := int((size - r.start + pgzChunk - 1) / pgzChunk)
	sem := make(chan struct{}, workers)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.results)
		for k := range nChunks {
			ch := make(chan *pgzChunkResult, 1)
			select {
			case r.results <- ch:
			case <-r.done:
				return
			}
			select {
			case sem <- struct{}{}:
			case <-r.done:
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer func() { <-sem }()
				if k == 0 {
					ch <- r.decode(r.end, nil, r.chunkLimit(0))
					return
				}
				ch <- r.speculate((r.start+int64(k)*pgzChunk)*8, r.chunkLimit(k))
			}()
		}
	}()
	return r
}

func (r *pgzReader) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *pgzReader) stop() { r.stopOnce.Do(func() { close(r.done) }) }

// grow makes room for 1 MiB more in b.
func grow(b []byte) []byte {
	nb := make([]byte, len(b), cap(b)+1<<20)
	copy(nb, b)
	return nb
}

func (r *pgzReader) getBuf() []byte {
	if b, ok := r.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 4*pgzChunk)
}

func (r *pgzReader) putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= 2*pgzMaxChunkOut {
		r.bufs.Put(&b)
	}
}

// decode inflates one chunk from a known block start with the real
// window (nil at the stream's start).
func (r *pgzReader) decode(startBit int64, window []byte, limit int64) *pgzChunkResult {
	res := &pgzChunkResult{start: startBit}
	d := newBlockDecoder(r.blob, r.size, startBit, window, limit)
	out := r.getBuf()
	for {
		if r.stopped() {
			res.err = errors.New("stopped")
			break
		}
		if cap(out)-len(out) < 64<<10 {
			out = grow(out)
		}
		n, err := d.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			res.end, res.final, res.trailer = d.endBit, d.final, d.trailer
			if res.end < 0 && !res.final {
				res.err = io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			res.err = err
			break
		}
		if len(out) > pgzMaxChunkOut {
			res.err = errors.New("chunk inflates beyond the limit")
			break
		}
	}
	res.out = out
	return res
}

// speculate finds the first block start from fromBit on and decodes from
// there to the first block end at or after limit, with an unknown window.
// The search is bounded (pgzMaxHeaders and the others): reaching a bound
// stops all speculation, and the reader inflates the rest sequentially.
func (r *pgzReader) speculate(fromBit, limit int64) *pgzChunkResult {
	search := pgzChunk / 2
	from := fromBit / 8
	b := make([]byte, min(search+1024, r.size-from))
	n, _ := r.blob.ReadAt(b, from)
	b = b[:n]
	var headers, candidates, attempts int
	var trialOut, attemptOut int64
	bit := 0
	defer func() {
		r.stats.bits.Add(int64(bit))
		atomicMax(&r.stats.maxBits, int64(bit))
	}()
	for ; int64(bit) < search*8 && bit < len(b)*8; bit++ {
		if bit&0xffff == 0 && r.stopped() {
			break
		}
		ok, full := blockStartCheck(b, bit)
		if full {
			headers++
		}
		if !ok {
			if headers >= pgzMaxHeaders {
				break
			}
			continue
		}
		if candidates >= pgzMaxCandidates || trialOut >= pgzMaxTrialOut || attempts >= pgzMaxAttempts || attemptOut >= pgzMaxChunkOut {
			break
		}
		candidates++
		plausible, out := r.plausible(fromBit+int64(bit), min(1<<20, pgzMaxTrialOut-trialOut))
		trialOut += out
		if !plausible {
			if headers >= pgzMaxHeaders {
				break
			}
			continue
		}
		attempts++
		res := r.speculateAt(fromBit+int64(bit), limit, pgzMaxChunkOut-attemptOut)
		attemptOut += int64(len(res.out))
		if res.err == nil && res.final && res.trailer+8 != r.size {
			res.err = errors.New("final block before the blob's end")
		}
		if res.err == nil {
			r.countSearch(headers, candidates, attempts, trialOut, attemptOut)
			return res
		}
		r.putBuf(res.out)
		if res.err == errDerivedRun {
			break
		}
	}
	r.countSearch(headers, candidates, attempts, trialOut, attemptOut)
	if int64(bit) < search*8 && bit < len(b)*8 && !r.stopped() {
		// A bound, not the end of the search window: the reader
		// inflates this chunk sequentially, and the rest of the stream
		// once a few chunks came to this (a stream that looks like
		// block starts everywhere).
		if r.stats.bounds.Add(1) >= pgzMaxBoundedChunks {
			r.stop()
		}
		return &pgzChunkResult{err: errSearchBound}
	}
	return &pgzChunkResult{err: errors.New("no block start found")}
}

func (r *pgzReader) countSearch(headers, candidates, attempts int, trialOut, attemptOut int64) {
	r.stats.attemptOut.Add(attemptOut)
	atomicMax(&r.stats.maxAttemptOut, attemptOut)
	r.stats.headers.Add(int64(headers))
	r.stats.candidates.Add(int64(candidates))
	r.stats.attempts.Add(int64(attempts))
	r.stats.trialOut.Add(trialOut)
	atomicMax(&r.stats.maxHeaders, int64(headers))
	atomicMax(&r.stats.maxCandidates, int64(candidates))
	atomicMax(&r.stats.maxAttempts, int64(attempts))
	atomicMax(&r.stats.maxTrialOut, trialOut)
}

// plausible reports whether a block decodes from startBit (with an
// unknown window), to at most max bytes, and is followed by what could be
// another block header: a cheaper test than speculateAt's two decoders.
// It returns the bytes it inflated.
func (r *pgzReader) plausible(startBit, max int64) (bool, int64) {
	w0, _ := pgzWindows()
	d := newBlockDecoder(r.blob, r.size, startBit, w0, startBit+1)
	n := int64(0)
	buf := make([]byte, 32<<10)
	for {
		m, err := d.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil || n > max {
			return false, n
		}
	}
	if d.final {
		return d.trailer+8 == r.size, n
	}
	if d.endBit < 0 {
		return false, n
	}
	var next [1 << 10]byte
	k, _ := r.blob.ReadAt(next[:], d.endBit/8)
	return blockStartCandidate(next[:k], int(d.endBit%8)), n
}

// speculateAt decodes from startBit to the first block end at or after
// limit with an unknown window, inflating at most maxOut bytes.
func (r *pgzReader) speculateAt(startBit, limit, maxOut int64) *pgzChunkResult {
	res := &pgzChunkResult{start: startBit}
	w0, w1 := pgzWindows()
	d0 := newBlockDecoder(r.blob, r.size, startBit, w0, limit)
	d1 := newBlockDecoder(r.blob, r.size, startBit, w1, limit)
	s1 := make([]byte, 64<<10)
	out := r.getBuf()
	res.out = out
	lastDerived := -1
	two := true
	for {
		if r.stopped() {
			res.err = errors.New("stopped")
			return res
		}
		if cap(out)-len(out) < 64<<10 {
			out = grow(out)
			res.out = out
		}
		piece := out[len(out) : len(out)+64<<10]
		n, err := io.ReadFull(d0, piece)
		if two {
			if n1, _ := io.ReadFull(d1, s1[:n]); n1 != n {
				res.err = errors.New("decoders disagree")
				return res
			}
			for i := range n {
				if s1[i] != piece[i] {
					at := len(out) + i
					res.derived = append(res.derived, derivedByte{at: int32(at), win: windowIndex(piece[i], s1[i])})
					lastDerived = at
				}
			}
		}
		out = out[:len(out)+n]
		res.out = out
		if two && len(out)-(lastDerived+1) >= pgzWindow {
			two = false // the unknown window can no longer be reached
		}
		if two && len(out) > pgzMaxDerivedRun {
			res.err = errDerivedRun
			return res
		}
		if (err == io.EOF || err == io.ErrUnexpectedEOF) && (d0.endBit >= 0 || d0.final) {
			res.end, res.final, res.trailer = d0.endBit, d0.final, d0.trailer
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		if int64(len(out)) > maxOut {
			res.err = errors.New("chunk inflates beyond the limit")
			return res
		}
	}
}

// Read returns the inflated stream.
func (r *pgzReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.rest != nil {
			n, err := r.rest.Read(p)
			if err != nil && err != io.EOF {
				err = gzipErr(err)
				r.err = err
			}
			return n, err
		}
		if r.seq != nil {
			n, err := r.seq.Read(p)
			r.crc = crc32.Update(r.crc, crc32.IEEETable, p[:n])
			r.n += int64(n)
			switch {
			case err == io.EOF:
				r.trail = r.seq.trailer
				r.seq = nil
				if err := r.finish(); err != nil {
					r.err = err
				}
			case err != nil:
				var ce flate.CorruptInputError
				if errors.As(err, &ce) {
					// flate counts from the blob's start here: give the
					// offset in the deflate stream, as gzip.Reader does.
					err = flate.CorruptInputError(int64(ce) - r.start)
				}
				r.err = gzipErr(noEOF(err))
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if r.trail >= 0 {
			if err := r.finish(); err != nil {
				r.err = err
			}
			continue
		}
		r.nextChunk()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextChunk takes the next chunk if it continues the verified parse,
// decodes it here when it does not, and falls back to sequential
// inflating when that fails too.
func (r *pgzReader) nextChunk() {
	r.putBuf(r.curBuf)
	r.curBuf = nil
	k := r.k
	r.k++
	var res *pgzChunkResult
	if ch, ok := <-r.results; ok {
		res = <-ch
	}
	if res != nil && res.err == nil && r.sameStart(res.start, r.end) && r.resolve(res) {
		r.take(res)
		return
	}
	if res != nil {
		if res.err == nil {
			r.stats.rejected.Add(1)
		}
		r.putBuf(res.out)
	}
	if res = r.decode(r.end, r.window, r.chunkLimit(k)); res.err == nil {
		r.take(res)
		return
	}
	r.putBuf(res.out)
	// Sequential from the last verified block end: it reports what is
	// wrong with the stream, if anything.
	r.stop()
	r.seq = newBlockDecoder(r.blob, r.size, r.end, r.window, r.size*8+1)
}

// sameStart reports whether a block parsed from bit a is the block that
// starts at bit b: the same bit, or a stored block header read a few bits
// early (the bits before b being zeros) whose length lands on the same
// byte, so that both parses read the same.
func (r *pgzReader) sameStart(a, b int64) bool {
	if a == b {
		return true
	}
	if a > b || b-a > 7 || (a+3+7)/8 != (b+3+7)/8 {
		return false
	}
	var buf [3]byte
	n, _ := r.blob.ReadAt(buf[:], a/8)
	br := &bitReader{b: buf[:n], bit: int(a % 8)}
	v, ok := br.get(int(b-a) + 3)
	// The bits from a to b, then b's header: all zeros is a non-final
	// stored block read from either place.
	return ok && v == 0
}

// resolve fills in the bytes res copied from the window before it.
func (r *pgzReader) resolve(res *pgzChunkResult) bool {
	off := pgzWindow - len(r.window)
	for _, d := range res.derived {
		i := int(d.win) - off
		if i < 0 {
			return false // before the stream's start: corrupt, say so sequentially
		}
		res.out[d.at] = r.window[i]
	}
	return true
}

func (r *pgzReader) take(res *pgzChunkResult) {
	r.crc = crc32.Update(r.crc, crc32.IEEETable, res.out)
	r.n += int64(len(res.out))
	if len(res.out) >= pgzWindow {
		r.window = append(r.window[:0], res.out[len(res.out)-pgzWindow:]...)
	} else {
		r.window = append(r.window, res.out...)
		if len(r.window) > pgzWindow {
			r.window = append(r.window[:0], r.window[len(r.window)-pgzWindow:]...)
		}
	}
	r.cur, r.curBuf = res.out, res.out
	r.end = res.end
	if res.final {
		r.trail = res.trailer
		r.stop()
	}
}

// finish checks the gzip trailer and goes on with any further member.
func (r *pgzReader) finish() error {
	var t [8]byte
	if _, err := r.blob.ReadAt(t[:], r.trail); err != nil {
		// As compress/gzip says it: a truncated trailer is an
		// unexpected EOF.
		return gzipErr(noEOF(err))
	}
	if binary.LittleEndian.Uint32(t[:4]) != r.crc || binary.LittleEndian.Uint32(t[4:]) != uint32(r.n) {
		return gzip.ErrChecksum
	}
	after := r.trail + 8
	r.trail = -1
	if after >= r.size {
		return io.EOF
	}
	zr, err := gzip.NewReader(io.NewSectionReader(r.blob, after, r.size-after))
	if err != nil {
		return gzipErr(err)
	}
	r.rest = zr
	return nil
}

// Close stops the workers and waits for them.
func (r *pgzReader) Close() error {
	r.stop()
	r.wg.Wait()
	return nil
}
