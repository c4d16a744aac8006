package vulndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the trivy-db schema this package reads and writes.
const SchemaVersion = trivydb.SchemaVersion

// ErrNoDB is returned by Open when the cache directory holds no database.
var ErrNoDB = errors.New("no vulnerability database")

// Metadata describes a database: its schema version, when it was made, when
// the next one is due and when it was downloaded.
type Metadata = metadata.Metadata

// DefaultDir returns the default cache directory for the database:
// $XDG_CACHE_HOME/taskguard/db (or the platform's user cache directory).
func DefaultDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory (set XDG_CACHE_HOME or pass --cache-dir): %w", err)
	}
	return filepath.Join(base, "taskguard", "db"), nil
}

// Path returns the bolt file of the database in dir.
func Path(dir string) string { return trivydb.Path(dir) }

// ReadMetadata reads dir's metadata.json.
func ReadMetadata(dir string) (Metadata, error) {
	m, err := metadata.NewClient(dir).Get()
	if err != nil {
		return Metadata{}, fmt.Errorf("read vulnerability DB metadata in %s: %w", dir, err)
	}
	return m, nil
}

// WriteMetadata writes dir's metadata.json.
func WriteMetadata(dir string, m Metadata) error {
	if err := metadata.NewClient(dir).Update(m); err != nil {
		return fmt.Errorf("write vulnerability DB metadata in %s: %w", dir, err)
	}
	return nil
}

// openSlot serializes use of trivy-db's single, process-wide bolt handle:
// OpenContext fills it and Close empties it. It is a channel, not a mutex, so
// that a wait for it ends with the waiter's context.
var openSlot = make(chan struct{}, 1)

// DB is an open, read-only vulnerability database.
type DB struct {
	dir    string
	meta   Metadata
	closed bool
}

// Open is OpenContext without a context: it waits for the database as long
// as another holder keeps it open.
func Open(dir string) (*DB, error) { return OpenContext(context.Background(), dir) }

// OpenContext opens the database in dir read-only. Close it when done; until
// then other calls wait, OpenContext until ctx ends: it then returns an
// error wrapping ctx's.
func OpenContext(ctx context.Context, dir string) (*DB, error) {
	if _, err := os.Stat(Path(dir)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s: run `taskguard db update` (or `taskguard db build`)", ErrNoDB, dir)
		}
		return nil, fmt.Errorf("open vulnerability DB: %w", err)
	}
	meta, err := ReadMetadata(dir)
	if err != nil {
		return nil, err
	}
	if meta.Version != SchemaVersion {
		return nil, fmt.Errorf("vulnerability DB in %s has schema %d, want %d: run `taskguard db update`", dir, meta.Version, SchemaVersion)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open vulnerability DB in %s: %w", dir, err)
	}
	select {
	case openSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("open vulnerability DB in %s: gave up waiting for the DB another scan in this process has open (one at a time): %w", dir, ctx.Err())
	}
	if err := trivydb.Init(dir, trivydb.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})); err != nil {
		<-openSlot
		return nil, fmt.Errorf("open vulnerability DB in %s: %w", dir, err)
	}
	return &DB{dir: dir, meta: meta}, nil
}

// Close closes the database and lets the next Open proceed.
func (d *DB) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	defer func() { <-openSlot }()
	if err := trivydb.Close(); err != nil {
		return fmt.Errorf("close vulnerability DB: %w", err)
	}
	return nil
}

// Metadata returns the metadata the database was opened with.
func (d *DB) Metadata() Metadata { return d.meta }

// Buckets returns the names of the advisory buckets ("debian 12",
// "go::The Go Vulnerability Database", ...), sorted.
func (d *DB) Buckets() ([]string, error) {
	var names []string
	err := trivydb.Config{}.Connection().View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			switch string(name) {
			case "vulnerability", "data-source", "advisory-detail", "vulnerability-id":
				return nil
			}
			names = append(names, string(name))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list vulnerability DB buckets: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Advisories returns the advisories for pkg in bucket.
func (d *DB) Advisories(bucket, pkg string) ([]types.Advisory, error) {
	advs, err := trivydb.Config{}.GetAdvisories(bucket, pkg)
	if err != nil {
		return nil, fmt.Errorf("advisories for %s in %q: %w", pkg, bucket, err)
	}
	sort.Slice(advs, func(i, j int) bool { return advs[i].VulnerabilityID < advs[j].VulnerabilityID })
	return advs, nil
}

// Vulnerability returns the details of a vulnerability; ok is false when the
// database has none.
func (d *DB) Vulnerability(id string) (v types.Vulnerability, ok bool, err error) {
	err = trivydb.Config{}.Connection().View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("vulnerability"))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(id))
		if raw == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(raw, &v)
	})
	if err != nil {
		return types.Vulnerability{}, false, fmt.Errorf("vulnerability %s: %w", id, err)
	}
	return v, ok, nil
}
