// Package layercache keeps what a scan learnt from an image layer on disk,
// so that the next scan of an image with the same layer does not read it
// again.
//
// Entries are files named by a key (the caller's: a hash of the layer's
// diff ID and what analysed it), checksummed, written to a temporary file
// and renamed into place, so that concurrent jobs sharing the directory
// (parallel CI jobs on one runner) never see half an entry: two writers of
// one key both write a whole entry and the last rename wins. A hit touches
// the entry's modification time; when the directory grows past its bound,
// the least recently used entries are removed, under an advisory lock so
// that two processes do not evict at once. An entry that fails its
// checksum is removed and reported as an error, so that the caller
// analyses the layer again.
package layercache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DefaultMaxBytes bounds the size of a cache directory when Options.MaxBytes
// is zero.
const DefaultMaxBytes = 1 << 30

// maxEntry bounds one entry read back from disk.
const maxEntry = 1 << 30

// magic starts every entry: format version 1.
var magic = []byte("TGLC\x00\x01")

// ErrCorrupt is returned by Get for an entry that fails its checksum.
var ErrCorrupt = errors.New("corrupt layer cache entry")

// Options tune a cache.
type Options struct {
	// MaxBytes bounds the total size of the entries; 0 means
	// DefaultMaxBytes.
	MaxBytes int64
}

// Cache is a directory of entries.
type Cache struct {
	dir string
	max int64
}

// DefaultDir returns $XDG_CACHE_HOME/taskguard/layers (or the platform's
// user cache directory).
func DefaultDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory (set XDG_CACHE_HOME or pass --cache-dir): %w", err)
	}
	return filepath.Join(base, "taskguard", "layers"), nil
}

// Open returns the cache in dir, creating the directory.
func Open(dir string, opts Options) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("layer cache %s: %w", dir, err)
	}
	max := opts.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	return &Cache{dir: dir, max: max}, nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// validKey reports whether key can name a file: hex digits only, as the
// callers' hashes are.
func validKey(key string) bool {
	if len(key) < 8 || len(key) > 128 {
		return false
	}
	for _, r := range key {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

func (c *Cache) path(key string) string {
	return filepath.Join(c.dir, key[:2], key+".entry")
}

// Get returns the entry stored under key; ok is false when there is none.
// An entry that fails its checksum is removed and ErrCorrupt returned.
func (c *Cache) Get(key string) (data []byte, ok bool, err error) {
	if !validKey(key) {
		return nil, false, fmt.Errorf("layer cache: invalid key %q", key)
	}
	p := c.path(key)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("layer cache: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEntry+1))
	f.Close()
	if err != nil {
		return nil, false, fmt.Errorf("layer cache: read %s: %w", p, err)
	}
	data, err = unwrap(b)
	if err != nil {
		// Removed so that the fresh analysis can take its place; another
		// process may have replaced it already, which is as good.
		_ = os.Remove(p)
		return nil, false, fmt.Errorf("layer cache: %s: %w", p, err)
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // least recently used goes first
	return data, true, nil
}

// wrap frames data: magic, length, SHA-256, data.
func wrap(data []byte) []byte {
	sum := sha256.Sum256(data)
	out := make([]byte, 0, len(magic)+8+len(sum)+len(data))
	out = append(out, magic...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(data)))
	out = append(out, sum[:]...)
	return append(out, data...)
}

func unwrap(b []byte) ([]byte, error) {
	head := len(magic) + 8 + sha256.Size
	if len(b) < head || !bytes.Equal(b[:len(magic)], magic) {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	n := binary.BigEndian.Uint64(b[len(magic):])
	data := b[head:]
	if uint64(len(data)) != n {
		return nil, fmt.Errorf("%w: %d bytes of data, header says %d", ErrCorrupt, len(data), n)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], b[len(magic)+8:head]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return data, nil
}

// Put stores data under key: written to a temporary file beside its place
// and renamed there, so that readers see the old entry or the new one,
// never a part. It then evicts old entries if the cache is over its bound.
func (c *Cache) Put(key string, data []byte) error {
	if !validKey(key) {
		return fmt.Errorf("layer cache: invalid key %q", key)
	}
	p := c.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+key[:8]+"-*")
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	if _, err := tmp.Write(wrap(data)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("layer cache: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("layer cache: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("layer cache: %w", err)
	}
	return c.evict()
}

type entryFile struct {
	path string
	size int64
	mod  time.Time
}

// list returns the entries (and stale temporary files) in the cache.
func (c *Cache) list() ([]entryFile, []string, error) {
	var entries []entryFile
	var stale []string
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		switch {
		case strings.HasSuffix(p, ".entry"):
			entries = append(entries, entryFile{p, info.Size(), info.ModTime()})
		case strings.HasPrefix(d.Name(), ".tmp-") && time.Since(info.ModTime()) > time.Hour:
			// Left by a killed writer.
			stale = append(stale, p)
		}
		return nil
	})
	return entries, stale, err
}

// Size returns the total size of the entries.
func (c *Cache) Size() (int64, error) {
	entries, _, err := c.list()
	var n int64
	for _, e := range entries {
		n += e.size
	}
	return n, err
}

// evict removes the least recently used entries while the cache is over
// its bound. Only one process evicts at a time; the others go on.
func (c *Cache) evict() error {
	entries, stale, err := c.list()
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	if total <= c.max && len(stale) == 0 {
		return nil
	}
	unlock, ok, err := tryLock(filepath.Join(c.dir, ".lock"))
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	if !ok {
		return nil
	}
	defer unlock()
	for _, p := range stale {
		_ = os.Remove(p)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod.Before(entries[j].mod) })
	for _, e := range entries {
		if total <= c.max {
			break
		}
		if err := os.Remove(e.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= e.size
		}
	}
	return nil
}

// Clean removes every entry.
func (c *Cache) Clean() error {
	unlock, err := lock(filepath.Join(c.dir, ".lock"))
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	defer unlock()
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	for _, e := range ents {
		if e.Name() == ".lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.dir, e.Name())); err != nil {
			return fmt.Errorf("layer cache: %w", err)
		}
	}
	return nil
}

// Key returns a cache key: the SHA-256 (hex) of the parts, each followed
// by a zero byte.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
