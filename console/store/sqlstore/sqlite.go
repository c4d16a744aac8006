package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	sqlite3 "modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3lib "modernc.org/sqlite/lib"
)

// pollInterval is how often a SQLite store reads the policy revision while
// anyone waits, to see a change another process wrote to the file.
const pollInterval = 250 * time.Millisecond

// openBusyWait bounds how long OpenSQLite retries a database that another
// process holds locked while it sets the file up (as busy_timeout does).
const openBusyWait = 10 * time.Second

// sqliteConns bounds the connections a SQLite store opens, all of them kept
// open once opened (0: no bound; the benchmark varies it). SQLite in WAL
// mode lets readers run beside the one writer, so a few connections keep
// the cores busy; without a bound every concurrent request opened its own
// (500 requests at once: about 450 connections, each with the database and
// its log open and a schema and page cache of its own, opened and closed
// again per burst), every writer among them waiting in SQLite's busy
// handler. BenchmarkSQLitePool (bursts of 250 audit batches stored and 250
// pages read at once) takes about a sixth of the unbounded time with 2 to
// 16 connections alike (medians of 7 interleaved rounds on 2 cores: 1.49 s
// unbounded, 0.22 to 0.28 s bounded); 8 leaves room for a few slow reads
// (a text search over many audits) without holding up the rest. Requests
// past the bound wait for a connection (database/sql's queue, ended by the
// request's context). WithSQLiteConns sets it per store (the console's
// --sqlite-conns).
var sqliteConns = DefaultSQLiteConns

// isBusy tells whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var e *sqlite3.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3lib.SQLITE_BUSY
}

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates it to the latest schema. logger may be nil.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (*DB, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
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
	dsn := "file:" + path + "?" + q.Encode()
	// Two consoles starting on one new file race to switch it to WAL: the
	// loser's PRAGMA gets SQLITE_BUSY at once (SQLite does not wait in its
	// busy handler there, to avoid a deadlock). Try again, for a bounded time.
	deadline := time.Now().Add(openBusyWait)
	backoff := time.Millisecond
	var s *DB
	for {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
		if o.sqliteConns > 0 {
			db.SetMaxOpenConns(o.sqliteConns)
			db.SetMaxIdleConns(o.sqliteConns)
		}
		s, err = open(ctx, db, sqliteDialect, logger, o)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("open database %s: %w (the database stayed locked: %w)", path, ctx.Err(), err)
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
	pctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Go(func() { s.pollRevisions(pctx) })
	return s, nil
}

// open pings and migrates db; the caller starts the change feed.
func open(ctx context.Context, db *sql.DB, d *dialect, logger *slog.Logger, o options) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s := &DB{db: db, dialect: d, log: logger.With("component", "store", "engine", d.name), watch: newRevisions(), stop: func() {},
		failureRows: o.loginFailureRows}
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
