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
	// work counts the bytes of directories hidden looked up; past budget
	// (maxFlattenWork) the walk fails.
	work, budget int64
}

func newFlattener(max int64, logger *slog.Logger) *flattener {
	return &flattener{
		max:      max,
		logger:   logger,
		seen:     map[string]bool{},
		whiteout: map[string]bool{},
		opaque:   map[string]bool{},
		budget:   maxFlattenWork,
	}
}

// maxPathLen is Linux's PATH_MAX: a longer path cannot be created in a
// container's filesystem (extracting the layer fails), so such an entry is
// never a file the image runs. Tar's PAX records allow names of up to
// 1 MiB, and the flattening's work grows with a path's length times its
// depth.
const maxPathLen = 4096

// maxFlattenWork bounds, per walk, the bytes of directory prefixes that
// hidden looks up: a path of depth d and length n costs up to d*n. 16 GiB
// (seconds of hashing) is over ten times what an image of a million files
// of depth 20 and 150 bytes costs; a hostile image of deep 4 KiB paths
// reaches it instead of hashing for hours.
const maxFlattenWork = 16 << 30

// errFlattenWork is the error of a walk past maxFlattenWork.
var errFlattenWork = fmt.Errorf("its paths are too long and deep to flatten (more than %d GiB of directory prefixes to look up); refused as hostile", maxFlattenWork>>30)

// cleanPath turns a tar entry name into a clean relative path. It reports
// false for names that would leave the root ("../x"), are empty, or are
// longer than maxPathLen.
func cleanPath(name string) (string, bool) {
	if len(name) > maxPathLen+len("./") || strings.ContainsRune(name, 0) {
		return "", false
	}
	n := strings.TrimPrefix(name, "./")
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", false
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+n), "/")
	if p == "" || p == "." || len(p) > maxPathLen {
		return "", false
	}
	return p, true
}

// hidden reports whether p (clean), which a lower layer holds, is hidden
// by what the upper layers did. Its directories are looked up as
// substrings of p, without allocating; the bytes looked up count towards
// maxFlattenWork (see visible).
func (f *flattener) hidden(p string) bool {
	if f.whiteout[p] {
		return true
	}
	for i := strings.LastIndexByte(p, '/'); ; i = strings.LastIndexByte(p[:i], '/') {
		if i < 0 {
			return f.opaque["."]
		}
		dir := p[:i]
		f.work += int64(i)
		if f.whiteout[dir] || f.opaque[dir] {
			return true
		}
		if isDir, ok := f.seen[dir]; ok && !isDir {
			// An upper layer replaced the directory with a file or a link.
			return true
		}
	}
}

// visible reports whether p is neither hidden nor seen already, and fails
// once the walk's lookups passed maxFlattenWork.
func (f *flattener) visible(layer, p string) (bool, error) {
	hidden := f.hidden(p)
	if f.work > f.budget {
		return false, fmt.Errorf("layer %s: %w", layer, errFlattenWork)
	}
	if hidden {
		return false, nil
	}
	_, seen := f.seen[p]
	return !seen, nil
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
			return fmt.Errorf("layer %s: read tar (%s): %w", id, readFailure(err), err)
		}
		p, ok := cleanPath(hdr.Name)
		if !ok {
			if hdr.Name != "./" && hdr.Name != "." && hdr.Name != "/" {
				f.logger.Warn("skipping layer entry with an unsafe path (outside the root, or longer than PATH_MAX)", "layer", id, "path", trimmedName(hdr.Name))
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
		if ok, err := f.visible(id, p); !ok || err != nil {
			if err != nil {
				return err
			}
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

// trimmedName is a tar entry name for a log line: at most 256 bytes and a
// count of the rest.
func trimmedName(name string) string {
	if len(name) <= 256 {
		return name
	}
	return fmt.Sprintf("%s… (%d bytes more)", name[:256], len(name)-256)
}
