//go:build linux && (amd64 || arm64) && !nodlopen

package isal

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/taskguard/taskguard/internal/testenv"
)

// library loads libisal.so.2, or skips the test (fails it in CI, where
// scripts/install-deps.sh installs libisal2).
func library(t testing.TB) *Library {
	t.Helper()
	lib, err := Load(DefaultLibrary)
	if err != nil {
		testenv.Skip(t, "ISA-L is not installed (apt-get install libisal2): %v", err)
	}
	return lib
}

// gzipLevel compresses b as one gzip member (compress/gzip).
func gzipLevel(t testing.TB, b []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// text is n bytes of words: long matches, small alphabet.
func text(n int, seed uint64) []byte {
	words := []string{"package", "layer", "gzip", "usr/lib/", "deflate", "\n", "func", "0x1f8b", "debian", " "}
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// mixed alternates text and random runs: literals, matches and stored
// blocks.
func mixed(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, 0, n)
	for len(b) < n {
		run := 1 + r.IntN(64<<10)
		if r.IntN(2) == 0 {
			b = append(b, text(run, r.Uint64())...)
		} else {
			for range run {
				b = append(b, byte(r.Uint32()))
			}
		}
	}
	return b[:n]
}

// limit bounds what the tests inflate (a fuzzed zero stream can expand
// 1000-fold).
const limit = 64 << 20

// stdlib inflates b with compress/gzip (multistream), at most limit bytes.
func stdlib(b []byte) ([]byte, error) { return stdlibN(b, limit) }

func stdlibN(b []byte, n int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, n))
}

// inflate reads src through lib's reader in reads of step bytes (0:
// io.ReadAll's growing buffer), at most limit bytes.
func inflate(lib *Library, src io.Reader, step int) ([]byte, error) {
	r, err := lib.NewReader(src)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if step == 0 {
		return io.ReadAll(io.LimitReader(r, limit))
	}
	var got []byte
	buf := make([]byte, step)
	for len(got) < limit {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// realGzip returns what Debian's gzip makes of in at the level.
func realGzip(t *testing.T, in []byte, level string) []byte {
	t.Helper()
	gz := testenv.LookPath(t, "gzip", "gzip")
	cmd := exec.Command(gz, "-c", "-n", level)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip %s: %v", level, err)
	}
	return out
}

// realTar is a layer-like tar stream made by GNU tar of part of GOROOT.
func realTar(t *testing.T, dir string) []byte {
	t.Helper()
	tarBin := testenv.LookPath(t, "tar", "tar")
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	out, err := exec.Command(tarBin, "-c", "-C", filepath.Join(strings.TrimSpace(string(goroot)), dir), ".").Output()
	if err != nil {
		t.Fatalf("tar of %s: %v", dir, err)
	}
	return out
}

// TestLoadMapsTheLibrary: Load opens libisal.so.2 into this process (it
// is in /proc/self/maps afterwards) and passes the self-test.
func TestLoadMapsTheLibrary(t *testing.T) {
	lib := library(t)
	if lib.Name() != DefaultLibrary {
		t.Fatalf("Name() = %q", lib.Name())
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(maps, []byte("/libisal.so.2")) {
		t.Fatalf("libisal.so.2 is not mapped after Load:\n%s", maps)
	}
}

// TestLoadFails: a missing library, a library that is not ISA-L, and a
// path that is not a library are errors that name it.
func TestLoadFails(t *testing.T) {
	notLib := filepath.Join(t.TempDir(), "libisal.so.2")
	if err := os.WriteFile(notLib, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/nonexistent/libisal.so.2", "libc.so.6", notLib} {
		lib, err := Load(name)
		if err == nil {
			t.Fatalf("Load(%q) = %v, want an error", name, lib)
		}
		if !strings.Contains(err.Error(), name) {
			t.Fatalf("Load(%q): %v, does not name the library", name, err)
		}
	}
}

// TestMatchesGzip: the same bytes as compress/gzip for streams of every
// kind — real layers made by GNU tar and Debian's gzip at levels 1, 6 and
// 9, their halves gzipped apart and concatenated (a multi-member layer),
// compress/gzip's own streams — read whole, from a source that hands out
// one byte at a time, and in tar-header-sized and single-byte reads.
func TestMatchesGzip(t *testing.T) {
	lib := library(t)
	layer := realTar(t, "src/encoding")
	var multi []byte
	for i := range 5 {
		multi = append(multi, gzipLevel(t, mixed(300<<10, uint64(i)), 1+i)...)
	}
	empty := gzipLevel(t, nil, 6)
	var named bytes.Buffer
	zw := gzip.NewWriter(&named)
	zw.Name, zw.Comment, zw.Extra = "layer.tar", "a comment", []byte{1, 2, 3, 4}
	zw.Write(text(100<<10, 9))
	zw.Close()
	half := len(layer) / 2
	cases := []struct {
		name string
		in   []byte
	}{
		{"GNU tar layer, gzip -1", realGzip(t, layer, "-1")},
		{"GNU tar layer, gzip -6", realGzip(t, layer, "-6")},
		{"GNU tar layer, gzip -9", realGzip(t, layer, "-9")},
		{"GNU tar layer in two gzip members", append(realGzip(t, layer[:half], "-6"), realGzip(t, layer[half:], "-6")...)},
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
		{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }, 0},
		{"one byte at a time", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }, 0},
		{"512-byte reads", func(b []byte) io.Reader { return bytes.NewReader(b) }, 512},
		{"1-byte reads", func(b []byte) io.Reader { return bytes.NewReader(b) }, 1},
	}
	for _, c := range cases {
		want, err := stdlib(c.in)
		if err != nil {
			t.Fatalf("%s: compress/gzip: %v", c.name, err)
		}
		for _, s := range sources {
			if s.step == 1 && len(c.in) > 1<<20 {
				continue
			}
			got, err := inflate(lib, s.src(c.in), s.step)
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, s.name, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, %s: %d bytes unlike compress/gzip's %d", c.name, s.name, len(got), len(want))
			}
		}
	}
}

// TestCorrupt: a damaged stream fails with an error (never a panic or a
// hang) exactly when compress/gzip fails on it.
func TestCorrupt(t *testing.T) {
	lib := library(t)
	good := gzipLevel(t, mixed(200<<10, 7), 6)
	two := append(append([]byte(nil), good...), gzipLevel(t, text(50<<10, 8), 6)...)
	flip := func(b []byte, at int, x byte) []byte {
		c := bytes.Clone(b)
		c[at] ^= x
		return c
	}
	cases := []struct {
		name, want string
		in         []byte
	}{
		{"truncated in the header", "unexpected EOF", good[:5]},
		{"truncated after the header", "unexpected EOF", good[:10]},
		{"truncated in the data", "unexpected EOF", good[:len(good)/2]},
		{"truncated in the trailer", "unexpected EOF", good[:len(good)-3]},
		{"second member truncated", "unexpected EOF", two[:len(good)+len(two[len(good):])/2]},
		{"second member's header truncated", "unexpected EOF", two[:len(good)+4]},
		{"bad CRC", "checksum", flip(good, len(good)-6, 0x01)},
		{"bad size", "checksum", flip(good, len(good)-2, 0x01)},
		{"bad method", "not deflate", flip(good, 2, 0x01)},
		{"flipped data byte", "checksum", flip(good, len(good)/3, 0x40)},
		{"trailing junk", "invalid gzip header", append(bytes.Clone(good), []byte("not gzip at all")...)},
		{"trailing zeros", "invalid gzip header", append(bytes.Clone(good), make([]byte, 1024)...)},
		{"one trailing byte", "unexpected EOF", append(bytes.Clone(good), 0x1f)},
		{"bad magic", "invalid gzip header", flip(good, 0, 0xff)},
	}
	for _, c := range cases {
		_, werr := stdlib(c.in)
		if werr == nil {
			t.Fatalf("%s: compress/gzip accepts it", c.name)
		}
		_, err := inflate(lib, bytes.NewReader(c.in), 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: %v, want an error with %q (compress/gzip: %v)", c.name, err, c.want, werr)
		}
		if c.want == "checksum" && (!errors.Is(err, gzip.ErrChecksum) || strings.Count(err.Error(), "gzip") != 1) {
			t.Fatalf("%s: %q, want gzip.ErrChecksum, named once, as the Go inflater says it", c.name, err)
		}
	}
	// Every truncation of a small two-member stream.
	small := append(gzipLevel(t, text(3000, 1), 6), gzipLevel(t, text(2000, 2), 9)...)
	for n := range len(small) {
		_, err := inflate(lib, bytes.NewReader(small[:n]), 0)
		_, werr := stdlib(small[:n])
		if (err == nil) != (werr == nil) {
			t.Fatalf("truncated to %d of %d bytes: isal error %v, compress/gzip error %v", n, len(small), err, werr)
		}
	}
	if _, err := lib.NewReader(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF as gzip.NewReader", err)
	}
	// The source's own error comes through.
	boom := errors.New("disk on fire")
	_, err := inflate(lib, io.MultiReader(bytes.NewReader(good[:1000]), iotest.ErrReader(boom)), 0)
	if !errors.Is(err, boom) {
		t.Fatalf("failing source: %v, want %v", err, boom)
	}
	r, err := lib.NewReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

// TestMemoryBounded: inflating a stream that expands 1000-fold holds the
// input buffer and the state, not the output.
func TestMemoryBounded(t *testing.T) {
	lib := library(t)
	z := gzipLevel(t, make([]byte, 256<<20), 9)
	r, err := lib.NewReader(bytes.NewReader(z))
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

// FuzzISAL: on any input (a gzip stream with one byte changed, or
// anything), the ISA-L reader fails exactly when compress/gzip fails and
// gives the same bytes when both succeed.
func FuzzISAL(f *testing.F) {
	lib := library(f)
	f.Add(gzipLevel(f, mixed(40<<10, 1), 6), uint16(0), byte(0))
	f.Add(gzipLevel(f, text(60<<10, 2), 1), uint16(100), byte(1))
	f.Add(append(gzipLevel(f, text(3<<10, 3), 9), gzipLevel(f, nil, 6)...), uint16(7), byte(0x80))
	f.Add(gzipLevel(f, make([]byte, 20<<10), 9), uint16(3), byte(0x04))
	f.Add(gzipLevel(f, mixed(10<<10, 5), 0), uint16(20), byte(0x10))
	f.Fuzz(func(t *testing.T, b []byte, at uint16, x byte) {
		if len(b) > 0 && x != 0 {
			b = bytes.Clone(b)
			b[int(at)%len(b)] ^= x
		}
		// A small output bound keeps every run short (fuzzing minimizes
		// each new input by running it many times).
		const fuzzLimit = 4 << 20
		want, werr := stdlibN(b, fuzzLimit)
		var got []byte
		r, err := lib.NewReader(bytes.NewReader(b))
		if err == nil {
			got, err = io.ReadAll(io.LimitReader(r, fuzzLimit))
			r.Close()
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("isal error %v, compress/gzip error %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("isal and compress/gzip bytes differ (%d vs %d)", len(got), len(want))
		}
	})
}
