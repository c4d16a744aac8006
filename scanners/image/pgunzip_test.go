package image

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// smallChunks turns parallel inflating on with small chunks, so that
// test streams of a few MiB are cut into many.
func smallChunks(t testing.TB, chunk int64) {
	oldChunk, oldMin, oldOff := pgzChunk, pgzMinSize, pgzDisabled
	pgzChunk, pgzMinSize, pgzDisabled = chunk, 2*chunk, false
	t.Cleanup(func() { pgzChunk, pgzMinSize, pgzDisabled = oldChunk, oldMin, oldOff })
}

func gzipLevel(t testing.TB, b []byte, level int) []byte {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// mixed returns text with incompressible stretches between (stored
// blocks, whose offsets flate reports skewed).
func mixed(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	var b []byte
	for len(b) < n {
		if r.Intn(3) == 0 {
			x := make([]byte, 1+r.Intn(200<<10))
			r.Read(x)
			b = append(b, x...)
		} else {
			b = append(b, text(1+r.Intn(300<<10), r.Int63())...)
		}
	}
	return b[:n]
}

// TestBlockDecoderResumes: every block end a decoder from the start
// reports (corrected for flate's skew after stored blocks) is where a
// decoder given the real window goes on to the same bytes.
func TestBlockDecoderResumes(t *testing.T) {
	plain := mixed(3<<20, 5)
	for _, level := range []int{1, 6, 9} {
		z := gzipLevel(t, plain, level)
		d := newBlockDecoder(bytes.NewReader(z), int64(len(z)), 80, nil, 0)
		var ends, outs []int64
		buf := make([]byte, 1<<20)
		for {
			d.endBit, d.limit = -1, 0
			_, err := d.rc.Read(buf)
			if d.endBit >= 0 {
				ends, outs = append(ends, d.endBit), append(outs, d.endOut)
			}
			if err != nil {
				break
			}
		}
		if len(ends) < 10 {
			t.Fatalf("level %d: %d block ends", level, len(ends))
		}
		for i, e := range ends {
			w := plain[max(0, outs[i]-pgzWindow):outs[i]]
			got, err := io.ReadAll(newBlockDecoder(bytes.NewReader(z), int64(len(z)), e, w, int64(len(z))*8+1))
			if err != nil || !bytes.Equal(got, plain[outs[i]:]) {
				t.Fatalf("level %d: resuming at bit %d (byte %d of output): %v, %d bytes", level, e, outs[i], err, len(got))
			}
		}
	}
}

func TestPgunzipContent(t *testing.T) {
	smallChunks(t, 64<<10)
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"text", text(2<<20, 3)},
		{"mixed", mixed(3<<20, 7)},
		{"zeros", make([]byte, 8<<20)},
	} {
		for _, level := range []int{1, 6, 9} {
			z := gzipLevel(t, tc.plain, level)
			if int64(len(z)) < pgzMinSize {
				continue
			}
			pr := newPgzReader(bytes.NewReader(z))
			if pr == nil {
				t.Fatalf("%s level %d: not inflated in parallel (%d bytes)", tc.name, level, len(z))
			}
			got, err := io.ReadAll(pr)
			pr.Close()
			if err != nil {
				t.Fatalf("%s level %d: %v", tc.name, level, err)
			}
			if !bytes.Equal(got, tc.plain) {
				t.Fatalf("%s level %d: %d bytes, want %d", tc.name, level, len(got), len(tc.plain))
			}
		}
	}
}

// TestPgunzipMultiMember: members after the first are inflated too, as
// gzip.Reader does.
func TestPgunzipMultiMember(t *testing.T) {
	smallChunks(t, 64<<10)
	a, b := mixed(1<<20, 1), text(300<<10, 2)
	z := append(gzipLevel(t, a, 6), gzipLevel(t, b, 6)...)
	pr := newPgzReader(bytes.NewReader(z))
	if pr == nil {
		t.Fatal("not inflated in parallel")
	}
	defer pr.Close()
	got, err := io.ReadAll(pr)
	if err != nil || !bytes.Equal(got, append(a, b...)) {
		t.Fatalf("%v, %d bytes", err, len(got))
	}
}

// TestPgunzipCorrupt: damaged streams give the errors the sequential
// inflater gives (never a panic or a hang), and no wrong bytes pass the
// checksum.
func TestPgunzipCorrupt(t *testing.T) {
	smallChunks(t, 64<<10)
	plain := mixed(2<<20, 9)
	z := gzipLevel(t, plain, 6)
	r := rand.New(rand.NewSource(1))
	cases := map[string][]byte{
		"truncated":     z[:len(z)*2/3],
		"no trailer":    z[:len(z)-8],
		"bad checksum":  append(append([]byte(nil), z[:len(z)-8]...), 1, 2, 3, 4, 5, 6, 7, 8),
		"trailing junk": append(append([]byte(nil), z...), []byte("junk after the member")...),
	}
	for i := range 20 {
		b := append([]byte(nil), z...)
		for range 1 + i%3 {
			b[10+r.Intn(len(b)-10)] ^= byte(1 + r.Intn(255))
		}
		cases["flipped "+string(rune('a'+i))] = b
	}
	for name, b := range cases {
		pr := newPgzReader(bytes.NewReader(b))
		if pr == nil {
			t.Fatalf("%s: not inflated in parallel", name)
		}
		got, err := io.ReadAll(pr)
		pr.Close()
		zr, serr := gzip.NewReader(bytes.NewReader(b))
		var want []byte
		if serr == nil {
			want, serr = io.ReadAll(zr)
		}
		if (err == nil) != (serr == nil) {
			t.Errorf("%s: parallel error %v, sequential error %v", name, err, serr)
			continue
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Errorf("%s: parallel and sequential bytes differ", name)
		}
		if err != nil && errors.Is(err, io.EOF) {
			t.Errorf("%s: error is io.EOF", name)
		}
	}
}

// Bounds of one FuzzPgunzip run: the fuzzer minimizes every new input by
// running it up to len(input)² times (for at most 60 s), and an input of
// a few KiB can inflate to much more than itself. With 200 KiB seeds and
// 64 MiB of output read per run (twice), a 45 s run stalled after its
// first seconds.
const (
	fuzzPgzMaxInput = 32 << 10
	fuzzPgzMaxOut   = 4 << 20
)

// FuzzPgunzip: on any input, parallel inflating gives the sequential
// inflater's bytes, or fails where it fails.
func FuzzPgunzip(f *testing.F) {
	boundMinimize(f)
	for _, s := range [][]byte{
		gzipLevel(f, mixed(12<<10, 1), 6),
		gzipLevel(f, text(60<<10, 2), 1),
		gzipLevel(f, make([]byte, 200<<10), 9),
		append(gzipLevel(f, text(30<<10, 3), 6), gzipLevel(f, mixed(8<<10, 4), 9)...),
	} {
		if len(s) > fuzzPgzMaxInput/2 {
			f.Fatalf("seed of %d bytes", len(s))
		}
		f.Add(s, uint16(0), byte(0))
	}
	f.Add(gzipLevel(f, text(60<<10, 2), 1), uint16(100), byte(1))
	f.Add(gzipLevel(f, make([]byte, 200<<10), 9), uint16(7), byte(0x80))
	f.Fuzz(func(t *testing.T, b []byte, at uint16, x byte) {
		// Cut, not skipped (an early return would be new coverage, which
		// the fuzzer minimizes for up to 60 s).
		b = b[:min(len(b), fuzzPgzMaxInput)]
		old := [3]any{pgzChunk, pgzMinSize, pgzDisabled}
		pgzChunk, pgzMinSize, pgzDisabled = 2<<10, 4<<10, false
		defer func() { pgzChunk, pgzMinSize, pgzDisabled = old[0].(int64), old[1].(int64), old[2].(bool) }()
		if len(b) > 0 && x != 0 {
			b = append([]byte(nil), b...)
			b[int(at)%len(b)] ^= x
		}
		pr := newPgzReader(bytes.NewReader(b))
		if pr == nil {
			return
		}
		got, err := io.ReadAll(io.LimitReader(pr, fuzzPgzMaxOut))
		pr.Close()
		zr, serr := gzip.NewReader(bytes.NewReader(b))
		var want []byte
		if serr == nil {
			want, serr = io.ReadAll(io.LimitReader(zr, fuzzPgzMaxOut))
		}
		if (err == nil) != (serr == nil) {
			t.Fatalf("parallel error %v, sequential error %v", err, serr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("parallel and sequential bytes differ (%d vs %d)", len(got), len(want))
		}
	})
}
