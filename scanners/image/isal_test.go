//go:build isal && cgo

package image

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/gzip"
)

// inflateBoth reads b through the ISA-L reader (handing it reads of size
// step, 0 meaning whole buffers) and through gzip.Reader.
func inflateBoth(t testing.TB, b []byte, src func([]byte) io.Reader, step int) (got []byte, err error, want []byte, werr error) {
	zr, werr := gzip.NewReader(bytes.NewReader(b))
	if werr == nil {
		want, werr = io.ReadAll(io.LimitReader(zr, 64<<20))
	}
	ir, err := newIsalReader(src(b))
	if err != nil {
		return nil, err, want, werr
	}
	defer ir.Close()
	if step == 0 {
		got, err = io.ReadAll(io.LimitReader(ir, 64<<20))
		return got, err, want, werr
	}
	buf := make([]byte, step)
	for len(got) < 64<<20 {
		n, rerr := ir.Read(buf)
		got = append(got, buf[:n]...)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	return got, err, want, werr
}

func plainSource(b []byte) io.Reader { return bytes.NewReader(b) }

// TestIsalMatchesGzip: the same bytes as gzip.Reader for streams of every
// kind, read whole, byte by byte from a source that hands out one byte at
// a time, and in tar-header-sized reads.
func TestIsalMatchesGzip(t *testing.T) {
	if GzipInflater() != "isal" {
		t.Fatalf("the isal build inflates with %q", GzipInflater())
	}
	var multi []byte
	for i := range 5 {
		multi = append(multi, gzipLevel(t, mixed(300<<10, int64(i)), 1+i)...)
	}
	empty := gzipLevel(t, nil, 6)
	var named bytes.Buffer
	zw := gzip.NewWriter(&named)
	zw.Name, zw.Comment, zw.Extra = "layer.tar", "a comment", []byte{1, 2, 3, 4}
	zw.Write(text(100<<10, 9))
	zw.Close()
	cases := []struct {
		name string
		in   []byte
	}{
		{"text level 6", gzipLevel(t, text(2<<20, 1), 6)},
		{"mixed level 1", gzipLevel(t, mixed(3<<20, 2), 1)},
		{"mixed level 9", gzipLevel(t, mixed(3<<20, 3), 9)},
		{"stored (level 0)", gzipLevel(t, mixed(1<<20, 4), 0)},
		{"zeros", gzipLevel(t, make([]byte, 5<<20), 9)},
		{"empty member", empty},
		{"five members", multi},
		{"empty members around one", append(append(append([]byte(nil), empty...), gzipLevel(t, text(70<<10, 5), 6)...), empty...)},
		{"name, comment and extra fields", named.Bytes()},
	}
	sources := []struct {
		name string
		src  func([]byte) io.Reader
		step int
	}{
		{"whole", plainSource, 0},
		{"one byte at a time", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }, 0},
		{"512-byte reads", plainSource, 512},
		{"1-byte reads", plainSource, 1},
	}
	for _, c := range cases {
		for _, s := range sources {
			if s.step == 1 && len(c.in) > 1<<20 {
				continue
			}
			got, err, want, werr := inflateBoth(t, c.in, s.src, s.step)
			if werr != nil {
				t.Fatalf("%s: gzip.Reader: %v", c.name, werr)
			}
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, s.name, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, %s: %d bytes, gzip.Reader %d", c.name, s.name, len(got), len(want))
			}
		}
	}
}

// TestIsalCorrupt: a damaged stream fails with an error (never a panic),
// as gzip.Reader fails on it; an intact one succeeds as it does.
func TestIsalCorrupt(t *testing.T) {
	good := gzipLevel(t, mixed(200<<10, 7), 6)
	two := append(append([]byte(nil), good...), gzipLevel(t, text(50<<10, 8), 6)...)
	flip := func(b []byte, at int, x byte) []byte {
		c := append([]byte(nil), b...)
		c[at] ^= x
		return c
	}
	cases := []struct {
		name string
		in   []byte
	}{
		{"truncated in the header", good[:5]},
		{"truncated after the header", good[:10]},
		{"truncated in the data", good[:len(good)/2]},
		{"truncated in the trailer", good[:len(good)-3]},
		{"second member truncated", two[:len(good)+len(two[len(good):])/2]},
		{"second member's header truncated", two[:len(good)+4]},
		{"bad CRC", flip(good, len(good)-6, 0x01)},
		{"bad size", flip(good, len(good)-2, 0x01)},
		{"bad method", flip(good, 2, 0x01)},
		{"flipped data byte", flip(good, len(good)/3, 0x40)},
		{"trailing junk", append(append([]byte(nil), good...), []byte("not gzip at all")...)},
		{"trailing zeros", append(append([]byte(nil), good...), make([]byte, 1024)...)},
		{"one trailing byte", append(append([]byte(nil), good...), 0x1f)},
		{"bad magic", flip(good, 0, 0xff)},
	}
	for _, c := range cases {
		got, err, want, werr := inflateBoth(t, c.in, plainSource, 0)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s: isal error %v, gzip.Reader error %v", c.name, err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, gzip.Reader %d", c.name, len(got), len(want))
		}
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
	}
	// Every truncation of a small two-member stream.
	small := append(gzipLevel(t, text(3000, 1), 6), gzipLevel(t, text(2000, 2), 9)...)
	for n := range len(small) {
		_, err, _, werr := inflateBoth(t, small[:n], plainSource, 0)
		if (err == nil) != (werr == nil) {
			t.Fatalf("truncated to %d of %d bytes: isal error %v, gzip.Reader error %v", n, len(small), err, werr)
		}
	}
	// An error names the layer as corrupt through decompress.
	r, err := decompress(bytes.NewReader(good[:len(good)/2]))
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated layer through decompress: %v, want an unexpected EOF", err)
	}
	if _, err := newIsalReader(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF as gzip.NewReader", err)
	}
}

// TestIsalMemoryBounded: inflating a stream that expands 1000-fold holds
// the input buffer and ISA-L's state, not the output.
func TestIsalMemoryBounded(t *testing.T) {
	z := gzipLevel(t, make([]byte, 256<<20), 9)
	r, err := newIsalReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 512<<10)
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if total != 256<<20 {
		t.Fatalf("inflated %d bytes, want %d", total, 256<<20)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("inflating 256 MiB allocated %d bytes", grew)
	}
}

// FuzzIsal: on any input (a gzip stream with one byte changed, or
// anything), the ISA-L reader fails exactly when gzip.Reader fails and
// gives the same bytes when both succeed.
func FuzzIsal(f *testing.F) {
	f.Add(gzipLevel(f, mixed(40<<10, 1), 6), uint16(0), byte(0))
	f.Add(gzipLevel(f, text(60<<10, 2), 1), uint16(100), byte(1))
	f.Add(append(gzipLevel(f, text(3<<10, 3), 9), gzipLevel(f, nil, 6)...), uint16(7), byte(0x80))
	f.Add(gzipLevel(f, make([]byte, 200<<10), 9), uint16(3), byte(0x04))
	f.Fuzz(func(t *testing.T, b []byte, at uint16, x byte) {
		if len(b) > 0 && x != 0 {
			b = append([]byte(nil), b...)
			b[int(at)%len(b)] ^= x
		}
		got, err, want, werr := inflateBoth(t, b, plainSource, 0)
		if (err == nil) != (werr == nil) {
			t.Fatalf("isal error %v, gzip.Reader error %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("isal and gzip.Reader bytes differ (%d vs %d)", len(got), len(want))
		}
	})
}
