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

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// VisitFunc is called by WalkLayers for every regular file of every layer,
// visible in the final filesystem or not, from several goroutines at once.
// It returns a value to keep for the file (nil keeps nothing). Returning
// ErrTooLarge (from File.ReadAll) skips the file with a warning; another
// error stops the walk.
type VisitFunc func(f File) (any, error)

// Kept is a value VisitFunc kept for a file that is visible in the
// flattened image.
type Kept struct {
	Path  string
	Layer string
	Value any
}

// WalkLayers reads up to parallel layers at once (at least one), calls
// visit for their files, and returns the values kept for files that are
// visible in the flattened image, top layer first. Each file's content is
// read at most once, inside visit; nothing but the kept values and the
// layers' path lists stay in memory.
func (im *Image) WalkLayers(ctx context.Context, parallel int, visit VisitFunc) ([]Kept, error) {
	if im.img == nil {
		var kept []Kept
		err := walkDir(ctx, im.dir, im.max, im.skip, im.logger, func(f File) error {
			v, err := visit(f)
			if err == nil && v != nil {
				kept = append(kept, Kept{Path: f.Path, Value: v})
			}
			return err
		})
		return kept, err
	}
	layers, err := im.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s: layers: %w", im.Name, err)
	}
	var diffIDs []v1.Hash
	if cf, err := im.img.ConfigFile(); err == nil && cf != nil && len(cf.RootFS.DiffIDs) == len(layers) {
		diffIDs = cf.RootFS.DiffIDs
	}
	if parallel < 1 {
		parallel = 1
	}
	indexes := make([]*layerIndex, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, l := range layers {
		g.Go(func() error {
			var id v1.Hash
			var err error
			if diffIDs != nil {
				id = diffIDs[i]
			} else if id, err = l.DiffID(); err != nil {
				return fmt.Errorf("layer %d: diff id: %w", i, err)
			}
			open := l.Compressed
			if len(im.tarLayers) == len(layers) {
				open = func() (io.ReadCloser, error) { return openArchiveEntry(im.tarOpen, im.tarPath, im.tarLayers[i]) }
			}
			indexes[i], err = indexLayerBlob(gctx, id.String(), open, im.max, im.layerLimit(), im.logger, visit)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("image %s: %w", im.Name, err)
	}
	fl := newFlattener(im.max, im.logger)
	var kept []Kept
	for i := len(indexes) - 1; i >= 0; i-- {
		kept = fl.apply(indexes[i], kept)
	}
	return kept, nil
}

// layerIndex is what one layer holds, in tar order, with the values kept
// for its files.
type layerIndex struct {
	id        string
	entries   []indexEntry
	whiteouts []string
	opaques   []string
}

type indexEntry struct {
	path  string
	isDir bool
	kept  any
}

func indexLayerBlob(ctx context.Context, id string, open func() (io.ReadCloser, error), max, maxLayer int64, logger *slog.Logger, visit VisitFunc) (*layerIndex, error) {
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	defer rc.Close()
	r, err := decompress(rc)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	defer r.Close()
	idx, err := indexLayer(ctx, id, newGuardReader(ctx, r, maxLayer), max, logger, visit)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("layer %s: read to end (corrupt or truncated layer): %w", id, err)
	}
	if err := rc.Close(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	return idx, nil
}

// indexLayer reads one uncompressed layer: its entries, whiteouts and
// opaque markers, and the values visit keeps for its regular files.
func indexLayer(ctx context.Context, id string, r io.Reader, max int64, logger *slog.Logger, visit VisitFunc) (*layerIndex, error) {
	idx := &layerIndex{id: id}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return idx, nil
		}
		if err != nil {
			return nil, fmt.Errorf("layer %s: read tar (corrupt or truncated layer): %w", id, err)
		}
		p, ok := cleanPath(hdr.Name)
		if !ok {
			if hdr.Name != "./" && hdr.Name != "." && hdr.Name != "/" {
				logger.Warn("skipping layer entry with an unsafe path", "layer", id, "path", hdr.Name)
			}
			continue
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if base == opaqueMarker {
			idx.opaques = append(idx.opaques, dir)
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			if _, ok := cleanPath(target); ok {
				idx.whiteouts = append(idx.whiteouts, target)
			}
			continue
		}
		e := indexEntry{path: p, isDir: hdr.Typeflag == tar.TypeDir}
		if hdr.Typeflag == tar.TypeReg {
			if hdr.Size < 0 {
				return nil, fmt.Errorf("layer %s: entry %s has a negative size", id, hdr.Name)
			}
			v, err := visit(File{Path: p, Info: hdr.FileInfo(), Layer: id, open: func() (io.Reader, error) { return tr, nil }, max: max})
			switch {
			case errors.Is(err, ErrTooLarge):
				logger.Warn("skipping file above the size limit", "layer", id, "path", p, "size", hdr.Size)
			case err != nil:
				return nil, err
			default:
				e.kept = v
			}
		}
		idx.entries = append(idx.entries, e)
	}
}

// apply lays one layer's index under what the upper layers made, and
// appends the kept values of its visible files to kept.
func (f *flattener) apply(idx *layerIndex, kept []Kept) []Kept {
	for _, e := range idx.entries {
		if f.hidden(e.path) {
			continue
		}
		if _, ok := f.seen[e.path]; ok {
			continue
		}
		f.seen[e.path] = e.isDir
		if e.kept != nil {
			kept = append(kept, Kept{Path: e.path, Layer: idx.id, Value: e.kept})
		}
	}
	for _, w := range idx.whiteouts {
		f.whiteout[w] = true
		if _, ok := f.seen[w]; !ok {
			f.seen[w] = false
		}
	}
	for _, o := range idx.opaques {
		f.opaque[o] = true
	}
	return kept
}
