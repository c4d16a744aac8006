package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// flattener walks layers from the top one down and passes on only the files
// that are visible in the final filesystem.
type flattener struct {
	max    int64
	logger *slog.Logger
	// seen holds every path an upper layer (or this one) produced, with
	// whether it is a directory.
	seen map[string]bool
	// whiteout holds paths removed by an upper layer (and so everything
	// below them).
	whiteout map[string]bool
	// opaque holds directories whose lower-layer children are hidden.
	opaque map[string]bool
}

func newFlattener(max int64, logger *slog.Logger) *flattener {
	return &flattener{
		max:      max,
		logger:   logger,
		seen:     map[string]bool{},
		whiteout: map[string]bool{},
		opaque:   map[string]bool{},
	}
}

// cleanPath turns a tar entry name into a clean relative path. It reports
// false for names that would leave the root ("../x") or are empty.
func cleanPath(name string) (string, bool) {
	if strings.ContainsRune(name, 0) {
		return "", false
	}
	n := strings.TrimPrefix(name, "./")
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", false
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+n), "/")
	if p == "" || p == "." {
		return "", false
	}
	return p, true
}

// hidden reports whether p, which a lower layer holds, is hidden by what the
// upper layers did.
func (f *flattener) hidden(p string) bool {
	if f.whiteout[p] {
		return true
	}
	for dir := path.Dir(p); ; dir = path.Dir(dir) {
		if dir == "." || dir == "/" {
			return f.opaque["."]
		}
		if f.whiteout[dir] || f.opaque[dir] {
			return true
		}
		if isDir, ok := f.seen[dir]; ok && !isDir {
			// An upper layer replaced the directory with a file or a link.
			return true
		}
	}
}

// layer reads one uncompressed layer tar stream.
func (f *flattener) layer(ctx context.Context, id string, r io.Reader, fn WalkFunc) error {
	tr := tar.NewReader(r)
	// Whiteouts and opaque markers of this layer hide only lower layers, so
	// they take effect after the layer is read.
	var whiteouts, opaques []string
	// A path repeated inside one layer is passed on once, the first time.
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %s: read tar (corrupt or truncated layer): %w", id, err)
		}
		p, ok := cleanPath(hdr.Name)
		if !ok {
			if hdr.Name != "./" && hdr.Name != "." && hdr.Name != "/" {
				f.logger.Warn("skipping layer entry with an unsafe path", "layer", id, "path", hdr.Name)
			}
			continue
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if base == opaqueMarker {
			opaques = append(opaques, dir)
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			if _, ok := cleanPath(target); ok {
				whiteouts = append(whiteouts, target)
			}
			continue
		}
		if f.hidden(p) {
			continue
		}
		if _, ok := f.seen[p]; ok {
			continue
		}
		isDir := hdr.Typeflag == tar.TypeDir
		f.seen[p] = isDir
		if hdr.Typeflag != tar.TypeReg { // archive/tar reports old TypeRegA entries as TypeReg
			continue
		}
		if hdr.Size < 0 {
			return fmt.Errorf("layer %s: entry %s has a negative size", id, hdr.Name)
		}
		file := File{
			Path:  p,
			Info:  hdr.FileInfo(),
			Layer: id,
			open:  func() (io.Reader, error) { return tr, nil },
			max:   f.max,
		}
		if err := fn(file); err != nil {
			if errors.Is(err, ErrTooLarge) {
				f.logger.Warn("skipping file above the size limit", "layer", id, "path", p, "size", hdr.Size)
				continue
			}
			return err
		}
	}
	for _, w := range whiteouts {
		f.whiteout[w] = true
		if _, ok := f.seen[w]; !ok {
			f.seen[w] = false
		}
	}
	for _, o := range opaques {
		f.opaque[o] = true
	}
	return nil
}
