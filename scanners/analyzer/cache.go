package analyzer

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"strconv"

	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
)

// cacheFormat changes when the cached form of a layer (cachedLayer,
// Result, Package) changes; it is part of every key.
const cacheFormat = "taskguard-layer/3"

// CacheSignature identifies what a set of analyzers learns from a layer:
// the cache format, each analyzer's type and Version() in order, and the
// file size limit (a larger limit can find more). A layer analysed under
// another signature is analysed again.
func CacheSignature(analyzers []Analyzer, maxFileSize int64) string {
	sig := cacheFormat + ";max=" + strconv.FormatInt(maxFileSize, 10)
	for _, a := range analyzers {
		sig += ";" + a.Type() + "=" + strconv.Itoa(a.Version())
	}
	return sig
}

// cachedLayer is what the layer cache holds for one layer.
type cachedLayer struct {
	Entries   []cachedEntry
	Whiteouts []string
	Opaques   []string
}

type cachedEntry struct {
	Path    string
	Dir     bool
	Results []*Result
}

// layerCache adapts a layercache.Cache to image.LayerCache for one
// analyzer set.
type layerCache struct {
	c   *layercache.Cache
	sig string
}

func (l layerCache) key(diffID string) string { return layercache.Key(l.sig, diffID) }

func (l layerCache) Load(diffID string) (*image.LayerIndex, error) {
	b, ok, err := l.c.Get(l.key(diffID))
	if err != nil || !ok {
		return nil, err
	}
	var cl cachedLayer
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&cl); err != nil {
		return nil, fmt.Errorf("layer cache entry of %s: %w", diffID, err)
	}
	idx := &image.LayerIndex{Entries: make([]image.IndexEntry, len(cl.Entries)), Whiteouts: cl.Whiteouts, Opaques: cl.Opaques}
	for i, e := range cl.Entries {
		idx.Entries[i] = image.IndexEntry{Path: e.Path, Dir: e.Dir}
		if len(e.Results) > 0 {
			idx.Entries[i].Kept = &fileResult{results: e.Results}
		}
	}
	return idx, nil
}

func (l layerCache) Store(diffID string, idx *image.LayerIndex) error {
	cl := cachedLayer{Entries: make([]cachedEntry, len(idx.Entries)), Whiteouts: idx.Whiteouts, Opaques: idx.Opaques}
	for i, e := range idx.Entries {
		cl.Entries[i] = cachedEntry{Path: e.Path, Dir: e.Dir}
		if fr, ok := e.Kept.(*fileResult); ok && fr != nil {
			cl.Entries[i].Results = fr.results
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&cl); err != nil {
		return fmt.Errorf("encode layer %s: %w", diffID, err)
	}
	return l.c.Put(l.key(diffID), buf.Bytes())
}
