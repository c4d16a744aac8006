package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// doubledPrefix returns the word that starts two neighbouring parts of
// an error message ("gzip: gzip: …", "gzip layer: gzip: …"), or "".
func doubledPrefix(msg string) string {
	parts := strings.Split(msg, ": ")
	for i := 1; i < len(parts); i++ {
		a, _, _ := strings.Cut(parts[i-1], " ")
		b, _, _ := strings.Cut(parts[i], " ")
		if a == b {
			return a
		}
	}
	return ""
}

// TestLayerErrorText: a corrupt layer fails every walk, inflated in
// parallel or not, with one message that names the layer and says what
// is wrong once: "image …: layer sha256:…: read to end (corrupt or
// truncated layer): gzip: invalid checksum", never "gzip: gzip: …". The
// error is still the inflater's underneath (errors.Is).
func TestLayerErrorText(t *testing.T) {
	files := []entry{
		{name: "etc/os-release", body: "ID=test\n"},
		{name: "usr/lib/big", body: string(mixed(700<<10, 21))},
		{name: "usr/share/doc/copyright", body: string(text(40<<10, 22))},
	}
	plain := tarBytes(t, files)
	good := gzipLevel(t, plain, 6)
	set := func(b []byte, at int, f func(byte) byte) []byte {
		b = bytes.Clone(b)
		if at < 0 {
			at += len(b)
		}
		b[at] = f(b[at])
		return b
	}
	zenc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := zenc.EncodeAll(plain, nil)
	zenc.Close()
	cases := []struct {
		name string
		blob []byte
		want string // the message after "image NAME: layer ID: "
		is   error  // what errors.Is finds in it, or nil
	}{
		{"bad method", set(good, 2, func(byte) byte { return 7 }), "read header (corrupt or truncated layer): gzip: invalid header", gzip.ErrHeader},
		{"reserved flags", set(good, 3, func(byte) byte { return 0xe0 }), "read header (corrupt or truncated layer): gzip: invalid header", gzip.ErrHeader},
		{"header only", good[:6], "read header (corrupt or truncated layer): gzip: unexpected EOF", io.ErrUnexpectedEOF},
		{"bad crc", set(good, -8, func(c byte) byte { return c ^ 0x5a }), "read to end (corrupt or truncated layer): gzip: invalid checksum", gzip.ErrChecksum},
		{"bad size", set(good, -2, func(c byte) byte { return c ^ 1 }), "read to end (corrupt or truncated layer): gzip: invalid checksum", gzip.ErrChecksum},
		{"truncated in a file", good[:len(good)/2], "read usr/lib/big (corrupt or truncated layer): gzip: unexpected EOF", io.ErrUnexpectedEOF},
		{"truncated trailer", good[:len(good)-3], "read to end (corrupt or truncated layer): gzip: unexpected EOF", io.ErrUnexpectedEOF},
		{"trailing garbage", append(bytes.Clone(good), "garbage after the last member"...), "read to end (corrupt or truncated layer): gzip: invalid header", gzip.ErrHeader},
		{"trailing zeros", append(bytes.Clone(good), 0, 0, 0), "read to end (corrupt or truncated layer): gzip: unexpected EOF", io.ErrUnexpectedEOF},
		// BTYPE 11 (reserved) in the first block's header.
		{"bad block type", set(good, 10, func(c byte) byte { return c | 6 }), "read tar (corrupt or truncated layer): gzip: flate: corrupt input before offset 1", nil},
		{"zstd truncated", zst[:len(zst)/2], "read usr/lib/big (corrupt or truncated layer): zstd: unexpected EOF", io.ErrUnexpectedEOF},
	}
	id := diffIDOf(plain)
	for _, inf := range inflaters {
		t.Run(inf.name, func(t *testing.T) {
			inf.set(t)
			for _, tc := range cases {
				p := archiveOfBlobs(t, [][]byte{tc.blob}, []string{id})
				for _, wp := range walkPaths {
					im, err := Open(context.Background(), p, Options{Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					_, _, err = wp.walk(im)
					im.Close()
					if err == nil {
						t.Errorf("%s %s: the walk of a corrupt layer succeeded", tc.name, wp.name)
						continue
					}
					got := err.Error()
					want := fmt.Sprintf("image %s: layer %s: %s", im.Name, id, tc.want)
					if got != want {
						t.Errorf("%s %s:\n got %q\nwant %q", tc.name, wp.name, got, want)
					}
					if m := doubledPrefix(got); m != "" {
						t.Errorf("%s %s: %q says %q", tc.name, wp.name, got, m)
					}
					if tc.is != nil && !errors.Is(err, tc.is) {
						t.Errorf("%s %s: %q is not %v", tc.name, wp.name, got, tc.is)
					}
				}
			}
		})
	}
}

// TestPrefixErr: the format is named once, whatever the wrapped error
// says, and the wrapped error is kept.
func TestPrefixErr(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{gzip.ErrChecksum, "gzip: invalid checksum"},
		{gzip.ErrHeader, "gzip: invalid header"},
		{io.ErrUnexpectedEOF, "gzip: unexpected EOF"},
		{errors.New("gzipped: x"), "gzip: gzipped: x"},
	} {
		err := gzipErr(tc.err)
		if err.Error() != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("gzipErr(%q) = %q, want %q wrapping it", tc.err, err, tc.want)
		}
	}
	if gzipErr(nil) != nil {
		t.Error("gzipErr(nil) is not nil")
	}
}
