package sqlstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// minConns is the least number of connections a PostgreSQL store keeps open
// (pool_max_conns in the URL may raise it).
const minConns = 20

// OpenPostgres connects to the database at url (postgres://user@host:port/db?...),
// migrates it and starts listening for policy changes. logger may be nil.
func OpenPostgres(ctx context.Context, url string, logger *slog.Logger, opts ...Option) (*DB, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url) // accepts the pool_* parameters as the older store did
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	conns := max(int(cfg.MaxConns), minConns)
	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	s, err := open(ctx, db, postgresDialect, logger, o)
	if err != nil {
		return nil, fmt.Errorf("open database %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	listenCfg := cfg.ConnConfig.Copy()
	s.done.Go(func() { s.listen(lctx, listenCfg) })
	return s, nil
}

// listen holds one connection with LISTEN and publishes each revision it is
// told about; after a (re)connect it reads the revision, so nothing is missed.
func (s *DB) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("policy change listener lost its connection; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	rev, err := s.PolicyRevision(ctx)
	if err != nil {
		return err
	}
	s.watch.set(rev)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		rev, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			continue
		}
		s.watch.set(rev)
	}
}
