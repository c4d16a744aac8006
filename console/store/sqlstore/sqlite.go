package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// pollInterval is how often a SQLite store reads the policy revision while
// anyone waits, to see a change another process wrote to the file.
const pollInterval = 250 * time.Millisecond

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates it to the latest schema. logger may be nil.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	// The file holds password hashes: only the console's user may read it.
	// SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s, err := open(ctx, db, sqliteDialect, logger)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Go(func() { s.pollRevisions(pctx) })
	return s, nil
}

// open pings and migrates db; the caller starts the change feed.
func open(ctx context.Context, db *sql.DB, d *dialect, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s := &DB{db: db, dialect: d, log: logger.With("component", "store", "engine", d.name), watch: newRevisions(), stop: func() {}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return s, nil
}

// pollRevisions reads the revision every pollInterval while anyone waits,
// and sleeps on the waiters' arrival otherwise.
func (s *DB) pollRevisions(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if s.watch.count() == 0 {
			select {
			case <-s.watch.first:
			case <-ctx.Done():
				return
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rev, err := s.PolicyRevision(rctx)
		cancel()
		if err == nil {
			s.watch.set(rev)
		} else if ctx.Err() == nil {
			s.log.Warn("read the policy revision", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
