package compliance

import (
	"bytes"
	"encoding/gob"
	"fmt"

	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
)

// factFormat changes when fileFact or what factOf reads changes; it is
// part of every layer cache key of the image checks.
const factFormat = "taskguard-compliance/1"

// factCache adapts a layercache.Cache to image.LayerCache for the image
// checks' per-file facts.
type factCache struct {
	c   *layercache.Cache
	sig string
}

type cachedFacts struct {
	Entries   []cachedFact
	Whiteouts []string
	Opaques   []string
}

type cachedFact struct {
	Path string
	Dir  bool
	// Fact is set for regular files.
	Fact *fileFact
}

func (l factCache) Load(diffID string) (*image.LayerIndex, error) {
	b, ok, err := l.c.Get(layercache.Key(l.sig, diffID))
	if err != nil || !ok {
		return nil, err
	}
	var cf cachedFacts
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&cf); err != nil {
		return nil, fmt.Errorf("layer cache entry of %s: %w", diffID, err)
	}
	idx := &image.LayerIndex{Entries: make([]image.IndexEntry, len(cf.Entries)), Whiteouts: cf.Whiteouts, Opaques: cf.Opaques}
	for i, e := range cf.Entries {
		idx.Entries[i] = image.IndexEntry{Path: e.Path, Dir: e.Dir}
		if e.Fact != nil {
			idx.Entries[i].Kept = *e.Fact
		}
	}
	return idx, nil
}

func (l factCache) Store(diffID string, idx *image.LayerIndex) error {
	cf := cachedFacts{Entries: make([]cachedFact, len(idx.Entries)), Whiteouts: idx.Whiteouts, Opaques: idx.Opaques}
	for i, e := range idx.Entries {
		cf.Entries[i] = cachedFact{Path: e.Path, Dir: e.Dir}
		if f, ok := e.Kept.(fileFact); ok {
			cf.Entries[i].Fact = &f
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&cf); err != nil {
		return fmt.Errorf("encode layer %s: %w", diffID, err)
	}
	return l.c.Put(layercache.Key(l.sig, diffID), buf.Bytes())
}
