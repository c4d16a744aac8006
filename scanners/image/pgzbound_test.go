package image

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/flate"
)

// hostileBlockStarts returns a gzip stream of stored blocks (level 0)
// whose data is copies of one compressed fragment: a dynamic deflate
// block that inflates to fragOut bytes, all copied from the window before
// it, then an empty stored block. Every copy's first bit is a true block
// start for a parse that starts there (with any window), so a chunk of
// the stream holds a block-start candidate every few hundred bytes, each
// decoding to fragOut bytes and on through the copies after it, none of
// them the stream's own blocks.
func hostileBlockStarts(t testing.TB, size, fragOut int) []byte {
	t.Helper()
	var fb bytes.Buffer
	fw, err := flate.NewWriter(&fb, 9)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, fragOut)
	fw.Write(zeros)
	fw.Flush()
	first := fb.Len()
	fw.Write(zeros) // copies of the byte before: the window alone
	fw.Flush()
	frag := bytes.Clone(fb.Bytes()[first:])
	t.Logf("fragment: %d bytes, block type %d", len(frag), frag[0]>>1&3)
	if !blockStartCandidate(frag, 0) {
		t.Fatalf("fragment of %d bytes does not start with a block header", len(frag))
	}
	var data []byte
	for len(data) < size {
		data = append(data, frag...)
	}
	return gzipLevel(t, data, 0)
}

// TestPgunzipSearchBound: a stream that looks like block starts
// everywhere costs the parallel inflater a bounded search per chunk
// (counted, not timed), stops its speculation, and is inflated to what
// compress/gzip gives.
func TestPgunzipSearchBound(t *testing.T) {
	// Chunks of 40 KiB: the stream's own block starts (stored blocks of
	// 64 KiB) are mostly beyond a chunk's 20 KiB search window.
	smallChunks(t, 40<<10)
	old := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	z := hostileBlockStarts(t, 1<<20, 256<<10)
	zr, err := stdgzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	pr := newPgzReader(bytes.NewReader(z))
	if pr == nil {
		t.Fatal("not inflated in parallel")
	}
	got, err := io.ReadAll(pr)
	pr.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%v: %d bytes, compress/gzip gives %d", err, len(got), len(want))
	}
	chunks := (int64(len(z)) + pgzChunk - 1) / pgzChunk
	s := &pr.stats
	t.Logf("%d bytes, %d chunks: %d bits examined, %d headers decoded, %d candidates (%d bytes inflated), %d attempts (%d bytes inflated), %d bounds reached, %d rejected",
		len(z), chunks, s.bits.Load(), s.headers.Load(), s.candidates.Load(), s.trialOut.Load(), s.attempts.Load(), s.attemptOut.Load(), s.bounds.Load(), s.rejected.Load())
	// The chunks being searched when the speculation stops finish
	// theirs: one per worker.
	if b := s.bounds.Load(); b < pgzMaxBoundedChunks || b > pgzMaxBoundedChunks+2 {
		t.Errorf("%d searches reached a bound, want %d to %d", b, pgzMaxBoundedChunks, pgzMaxBoundedChunks+2)
	}
	// Each chunk's search is bounded, and reaching a bound ends the
	// speculation: the work is linear in the stream (and far below the
	// bounds times the chunks: see the log).
	for _, c := range []struct {
		name     string
		got, max int64
	}{
		{"bits examined", s.bits.Load(), chunks * pgzChunk / 2 * 8},
		{"headers decoded", s.headers.Load(), chunks * pgzMaxHeaders},
		{"candidates", s.candidates.Load(), chunks * pgzMaxCandidates},
		{"bytes inflated by candidates", s.trialOut.Load(), chunks * (pgzMaxTrialOut + 1<<20)},
		{"attempts", s.attempts.Load(), chunks * pgzMaxAttempts},
		{"bytes inflated by attempts", s.attemptOut.Load(), chunks * (pgzMaxChunkOut + 64<<10)},
		{"most candidates in a chunk", s.maxCandidates.Load(), pgzMaxCandidates},
		{"most attempts in a chunk", s.maxAttempts.Load(), pgzMaxAttempts},
	} {
		if c.got > c.max {
			t.Errorf("%s: %d, more than %d", c.name, c.got, c.max)
		}
	}
}

// TestPgunzipSearchReal: real streams never reach a search bound, and
// their search stays far below it (the counts are logged).
func TestPgunzipSearchReal(t *testing.T) {
	smallChunks(t, 64<<10)
	old := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"text", text(3<<20, 31)},
		{"mixed", mixed(4<<20, 32)},
		{"zeros", make([]byte, 16<<20)},
	} {
		for _, level := range []int{1, 6, 9} {
			z := gzipLevel(t, tc.plain, level)
			pr := newPgzReader(bytes.NewReader(z))
			if pr == nil {
				continue
			}
			got, err := io.ReadAll(pr)
			pr.Close()
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Fatalf("%s level %d: %v", tc.name, level, err)
			}
			s := &pr.stats
			t.Logf("%s level %d: %d bytes: %d headers decoded, %d candidates (%d bytes inflated), %d attempts (%d bytes inflated); most in a chunk: %d headers, %d candidates, %d attempts; %d rejected",
				tc.name, level, len(z), s.headers.Load(), s.candidates.Load(), s.trialOut.Load(), s.attempts.Load(), s.attemptOut.Load(),
				s.maxHeaders.Load(), s.maxCandidates.Load(), s.maxAttempts.Load(), s.rejected.Load())
			if s.bounds.Load() != 0 {
				t.Errorf("%s level %d: a search bound was reached", tc.name, level)
			}
		}
	}
}
