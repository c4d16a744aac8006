package image

import (
	"archive/tar"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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
	return im.WalkLayersCached(ctx, parallel, visit, nil)
}

// WalkLayersCached is WalkLayers with a cache of layer indexes: a layer
// whose index cache holds (by diff ID) is not read at all, and the index
// of every layer read is stored. The values visit keeps must be what
// cache can store. A root filesystem is walked without the cache.
func (im *Image) WalkLayersCached(ctx context.Context, parallel int, visit VisitFunc, cache LayerCache) ([]Kept, error) {
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
	var layers []v1.Layer
	var diffIDs []v1.Hash
	cf, cfErr := im.img.ConfigFile()
	if cfErr == nil && cf != nil && len(im.tarLayers) > 0 && len(cf.RootFS.DiffIDs) == len(im.tarLayers) {
		// A docker archive's layers are read straight from the archive, by
		// the config's diff IDs: asking ggcr for its layers would hash
		// every layer blob (for the manifest) even when the cache holds
		// them all.
		diffIDs = cf.RootFS.DiffIDs
	} else {
		var err error
		if layers, err = im.img.Layers(); err != nil {
			return nil, fmt.Errorf("image %s: layers: %w", im.Name, err)
		}
		if cfErr == nil && cf != nil && len(cf.RootFS.DiffIDs) == len(layers) {
			diffIDs = cf.RootFS.DiffIDs
		}
	}
	n := len(layers)
	if layers == nil {
		n = len(diffIDs)
	}
	if parallel < 1 {
		parallel = 1
	}
	indexes := make([]*LayerIndex, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	// The archive digest (hashing every compressed layer) starts once the
	// first layers are running; it never delays them.
	defer im.startDigest()
	for k, i := range spawnOrder(n, parallel) {
		if k == parallel {
			im.startDigest()
		}
		g.Go(func() error {
			var id v1.Hash
			var err error
			if diffIDs != nil {
				id = diffIDs[i]
			} else if id, err = layers[i].DiffID(); err != nil {
				return fmt.Errorf("layer %d: diff id: %w", i, err)
			}
			var open func() (io.ReadCloser, error)
			if len(im.tarLayers) == n {
				open = func() (io.ReadCloser, error) { return openArchiveEntry(im.tarOpen, im.tarPath, im.tarLayers[i]) }
			} else {
				open = layers[i].Compressed
			}
			if cache != nil {
				idx, err := cache.Load(id.String())
				if err != nil {
					im.logger.Warn("layer cache entry unusable; reading the layer again", "layer", id.String(), "err", err)
				}
				if idx != nil {
					idx.id = id.String()
					indexes[i] = idx
					return nil
				}
			}
			// A layer is stored in the cache only when its content hashes
			// to the diff ID it is stored under: the cache is shared
			// between scans, and an image whose config names another
			// image's diff ID must not hide that layer's findings.
			var verified bool
			indexes[i], verified, err = indexLayerBlob(gctx, id, open, im.max, im.layerLimit(), im.logger, visit, cache != nil)
			if err == nil && cache != nil && !verified {
				im.logger.Warn("layer content does not match the diff ID the image config gives it; not storing it in the layer cache", "layer", id.String())
			}
			if err == nil && cache != nil && verified {
				if err := cache.Store(id.String(), indexes[i]); err != nil {
					im.logger.Warn("could not store a layer in the layer cache", "layer", id.String(), "err", err)
				}
			}
			return err
		})
	}
	if n <= parallel {
		im.startDigest()
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("image %s: %w", im.Name, err)
	}
	fl := newFlattener(im.max, im.logger)
	var kept []Kept
	for i := len(indexes) - 1; i >= 0; i-- {
		var err error
		if kept, err = fl.apply(indexes[i], kept); err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
	}
	return kept, nil
}

// spawnOrder is the order in which WalkLayers starts n layers, parallel at
// a time: the first batch in reverse, so that layer 0 (the base, as a rule
// the largest) is started last of it and runs at once on the starting
// goroutine's core (the Go scheduler runs the last goroutine started
// next), where the others wait for a core to take them; then the rest in
// order.
func spawnOrder(n, parallel int) []int {
	order := make([]int, 0, n)
	first := min(n, parallel)
	for i := first - 1; i >= 0; i-- {
		order = append(order, i)
	}
	for i := first; i < n; i++ {
		order = append(order, i)
	}
	return order
}

// LayerIndex is what one layer holds, in tar order, with the values a
// VisitFunc kept for its files: all a walk needs to lay the layer under
// the upper ones without reading it again.
type LayerIndex struct {
	id string
	// Entries are the layer's files, directories and links.
	Entries []IndexEntry
	// Whiteouts are the paths the layer removes from lower layers.
	Whiteouts []string
	// Opaques are the directories whose lower-layer content it hides.
	Opaques []string
}

// IndexEntry is one entry of a layer.
type IndexEntry struct {
	Path string
	Dir  bool
	// Kept is the value VisitFunc returned for a regular file, or nil.
	Kept any
}

// LayerCache keeps layer indexes between walks. Load returns nil and no
// error for a layer it does not hold; an error (a corrupt entry) makes
// the walk read the layer again, and is passed to the walk's logger.
type LayerCache interface {
	Load(diffID string) (*LayerIndex, error)
	Store(diffID string, idx *LayerIndex) error
}

// indexLayerBlob indexes one layer blob. With verify, it also hashes the
// uncompressed stream to its end and reports whether it matches diffID.
func indexLayerBlob(ctx context.Context, diffID v1.Hash, open func() (io.ReadCloser, error), max, maxLayer int64, logger *slog.Logger, visit VisitFunc, verify bool) (*LayerIndex, bool, error) {
	id := diffID.String()
	rc, err := open()
	if err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", id, err)
	}
	defer rc.Close()
	r, err := decompress(rc)
	if err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", id, err)
	}
	defer r.Close()
	var in io.Reader = r
	var h hash.Hash
	if verify {
		if h, err = v1.Hasher(diffID.Algorithm); err != nil {
			// An algorithm we cannot check: index it, but never cache it.
			verify = false
		} else {
			in = io.TeeReader(r, h)
		}
	}
	guarded := newGuardReader(ctx, in, maxLayer)
	idx, err := indexLayer(ctx, id, guarded, max, logger, visit)
	if err != nil {
		return nil, false, err
	}
	// The diff ID covers the whole stream, past the tar's end marker, and
	// a gzip stream is checked at its end.
	if err := drainLayer(id, guarded); err != nil {
		return nil, false, err
	}
	verified := verify && hex.EncodeToString(h.Sum(nil)) == diffID.Hex
	// Stop the read-ahead before reading the blob's rest ourselves.
	if err := r.Close(); err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", id, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, false, fmt.Errorf("layer %s: read to end (%s): %w", id, readFailure(err), err)
	}
	if err := rc.Close(); err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", id, err)
	}
	return idx, verified, nil
}

// drainLayer reads a layer's uncompressed stream to its end, past the
// tar's end marker (and the padding after it): a gzip stream's last
// trailer (the CRC-32 and size of its last member) is checked only
// there, and bytes after its last member are reported there, as
// compress/gzip reports them. r is the layer's guardReader, which bounds
// the read and stops it when the walk's context ends.
func drainLayer(id string, r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("layer %s: read to end (%s): %w", id, readFailure(err), err)
	}
	return nil
}

// indexLayer reads one uncompressed layer: its entries, whiteouts and
// opaque markers, and the values visit keeps for its regular files.
func indexLayer(ctx context.Context, id string, r io.Reader, max int64, logger *slog.Logger, visit VisitFunc) (*LayerIndex, error) {
	idx := &LayerIndex{id: id}
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
			return nil, fmt.Errorf("layer %s: read tar (%s): %w", id, readFailure(err), err)
		}
		p, ok := cleanPath(hdr.Name)
		if !ok {
			if hdr.Name != "./" && hdr.Name != "." && hdr.Name != "/" {
				logger.Warn("skipping layer entry with an unsafe path (outside the root, or longer than PATH_MAX)", "layer", id, "path", trimmedName(hdr.Name))
			}
			continue
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if base == opaqueMarker {
			idx.Opaques = append(idx.Opaques, dir)
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			if _, ok := cleanPath(target); ok {
				idx.Whiteouts = append(idx.Whiteouts, target)
			}
			continue
		}
		e := IndexEntry{Path: p, Dir: hdr.Typeflag == tar.TypeDir}
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
				e.Kept = v
			}
		}
		idx.Entries = append(idx.Entries, e)
	}
}

// apply lays one layer's index under what the upper layers made, and
// appends the kept values of its visible files to kept.
func (f *flattener) apply(idx *LayerIndex, kept []Kept) ([]Kept, error) {
	for _, e := range idx.Entries {
		if ok, err := f.visible(idx.id, e.Path); !ok || err != nil {
			if err != nil {
				return kept, err
			}
			continue
		}
		f.seen[e.Path] = e.Dir
		if e.Kept != nil {
			kept = append(kept, Kept{Path: e.Path, Layer: idx.id, Value: e.Kept})
		}
	}
	for _, w := range idx.Whiteouts {
		f.whiteout[w] = true
		if _, ok := f.seen[w]; !ok {
			f.seen[w] = false
		}
	}
	for _, o := range idx.Opaques {
		f.opaque[o] = true
	}
	return kept, nil
}
