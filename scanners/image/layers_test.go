package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// collectLayers walks im with WalkLayers and returns path -> content.
func collectLayers(t *testing.T, im *Image, parallel int) map[string]string {
	t.Helper()
	kept, err := im.WalkLayers(context.Background(), parallel, func(f File) (any, error) {
		b, err := f.ReadAll()
		if err != nil {
			return nil, err
		}
		return string(b), nil
	})
	if err != nil {
		t.Fatalf("walk layers: %v", err)
	}
	got := map[string]string{}
	for _, k := range kept {
		if _, dup := got[k.Path]; dup {
			t.Errorf("%s kept twice", k.Path)
		}
		got[k.Path] = k.Value.(string)
	}
	return got
}

func TestWalkLayersMatchesWalk(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]entry
	}{
		{"whiteouts and opaque dirs", [][]entry{lowerLayer, upperLayer}},
		{"three layers", [][]entry{
			{{name: "a/b/c", body: "1"}, {name: "a/d", body: "1"}, {name: "x", body: "1"}},
			{{name: "a/.wh..wh..opq"}, {name: "a/e", body: "2"}, {name: ".wh.x"}},
			{{name: "a/b/c", body: "3"}, {name: "x", body: "3"}},
		}},
		{"one layer", [][]entry{lowerLayer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := &Image{Name: tt.name, img: imageOf(t, tt.layers...), max: DefaultMaxFileSize, logger: slog.New(slog.DiscardHandler)}
			want := collect(t, im)
			for _, parallel := range []int{1, 4} {
				if got := collectLayers(t, im, parallel); !reflect.DeepEqual(got, want) {
					t.Errorf("parallel %d: %v, want %v", parallel, got, want)
				}
			}
		})
	}
	im := &Image{Name: "flat", img: imageOf(t, lowerLayer, upperLayer), max: DefaultMaxFileSize, logger: slog.New(slog.DiscardHandler)}
	kept, err := im.WalkLayers(context.Background(), 2, func(f File) (any, error) { return f.Layer, nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kept {
		if k.Value != k.Layer || !strings.HasPrefix(k.Layer, "sha256:") {
			t.Errorf("%s: kept from %v, reported layer %s", k.Path, k.Value, k.Layer)
		}
	}
}

func TestWalkLayersCorrupt(t *testing.T) {
	good := tarBytes(t, []entry{{name: "a", body: strings.Repeat("a", 4096)}})
	im := &Image{Name: "corrupt", img: imageOf(t, []entry{{name: "ok", body: "ok"}}), max: DefaultMaxFileSize, logger: slog.Default()}
	idx, err := indexLayer(context.Background(), "x", bytes.NewReader(good[:1000]), DefaultMaxFileSize, slog.New(slog.DiscardHandler), func(f File) (any, error) {
		_, err := f.ReadAll()
		return nil, err
	})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("truncated layer: index %v, err %v", idx, err)
	}
	if _, err := im.WalkLayers(context.Background(), 2, func(File) (any, error) { return nil, fmt.Errorf("stop") }); err == nil || !strings.Contains(err.Error(), "stop") {
		t.Errorf("visit error not returned: %v", err)
	}
}

// layersFromScript turns lines such as "a/b", "a/", "a/.wh.b", "l a/c" into
// tar layers; "--" separates layers, bottom first.
func layersFromScript(t testing.TB, script string) [][]byte {
	var layers [][]byte
	for _, block := range strings.Split(script, "--") {
		var entries []entry
		for i, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			switch {
			case line == "":
			case strings.HasPrefix(line, "l "):
				entries = append(entries, entry{name: line[2:], typeflag: tar.TypeSymlink, link: "x"})
			case strings.HasSuffix(line, "/"):
				entries = append(entries, entry{name: line, typeflag: tar.TypeDir})
			default:
				entries = append(entries, entry{name: line, body: fmt.Sprintf("%d:%s", i, line)})
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			hdr := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.body))}
			if e.typeflag != 0 {
				hdr.Typeflag, hdr.Linkname, hdr.Size = e.typeflag, e.link, 0
			}
			if err := tw.WriteHeader(hdr); err != nil {
				continue // a name tar cannot encode
			}
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, buf.Bytes())
	}
	return layers
}

// FuzzFlattenDifferential checks that the streaming walk and the parallel
// layer walk agree on what is visible, for layer scripts the fuzzer writes.
func FuzzFlattenDifferential(f *testing.F) {
	f.Add("a/b\na/c\nd\n--a/.wh.b\nd/\n--a/.wh..wh..opq\na/e")
	f.Add("x/y/z\n--l x/y\n--x/y/z")
	f.Add("./a\n/b\n../c\n--.wh.a\nb/.wh..wh..opq")
	f.Fuzz(func(t *testing.T, script string) {
		if len(script) > 4096 {
			return
		}
		layers := layersFromScript(t, script)
		logger := slog.New(slog.DiscardHandler)
		read := func(f File) (string, error) {
			b, err := f.ReadAll()
			return f.Layer + "|" + string(b), err
		}
		fl := newFlattener(1<<16, logger)
		want := map[string]string{}
		for i := len(layers) - 1; i >= 0; i-- {
			id := fmt.Sprint(i)
			if err := fl.layer(context.Background(), id, bytes.NewReader(layers[i]), func(f File) error {
				v, err := read(f)
				want[f.Path] = v
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		var idx []*LayerIndex
		for i, l := range layers {
			x, err := indexLayer(context.Background(), fmt.Sprint(i), bytes.NewReader(l), 1<<16, logger, func(f File) (any, error) { return read(f) })
			if err != nil {
				t.Fatal(err)
			}
			idx = append(idx, x)
		}
		fl2 := newFlattener(1<<16, logger)
		var kept []Kept
		var err error
		for i := len(idx) - 1; i >= 0; i-- {
			if kept, err = fl2.apply(idx[i], kept); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]string{}
		for _, k := range kept {
			got[k.Path] = k.Value.(string)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parallel walk %v, streaming walk %v", got, want)
		}
	})
}

// TestDecompressionBomb feeds a small gzip layer that unpacks to far more
// than the limit: the walk stops with ErrLayerTooLarge instead of
// inflating it all.
func TestDecompressionBomb(t *testing.T) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	const size = 64 << 20
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := raw.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	im := &Image{Name: "bomb", img: img, max: DefaultMaxFileSize, maxLayer: 1 << 20, logger: slog.New(slog.DiscardHandler)}
	if err := im.Walk(context.Background(), func(File) error { return nil }); !errors.Is(err, ErrLayerTooLarge) {
		t.Errorf("walk: err = %v, want ErrLayerTooLarge", err)
	}
	if _, err := im.WalkLayers(context.Background(), 2, func(File) (any, error) { return nil, nil }); !errors.Is(err, ErrLayerTooLarge) {
		t.Errorf("walk layers: err = %v, want ErrLayerTooLarge", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	im.maxLayer = 0
	if err := im.Walk(ctx, func(File) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("walk with a cancelled context: err = %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestSpawnOrder: every layer is started once; the first batch in reverse,
// so that the base layer is the one the starting goroutine's core runs.
func TestSpawnOrder(t *testing.T) {
	cases := []struct {
		n, parallel int
		want        []int
	}{
		{0, 2, []int{}},
		{1, 2, []int{0}},
		{2, 2, []int{1, 0}},
		{5, 2, []int{1, 0, 2, 3, 4}},
		{4, 1, []int{0, 1, 2, 3}},
		{3, 8, []int{2, 1, 0}},
	}
	for _, c := range cases {
		if got := spawnOrder(c.n, c.parallel); !slices.Equal(got, c.want) {
			t.Fatalf("spawnOrder(%d, %d) = %v, want %v", c.n, c.parallel, got, c.want)
		}
	}
}
