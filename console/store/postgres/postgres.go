package postgres

import (
	"context"
	"log/slog"

	"github.com/taskguard/taskguard/console/store/sqlstore"
)

// Open connects to the database at url (postgres://user@host:port/db?...),
// migrates it and starts listening for policy changes. logger may be nil.
func Open(ctx context.Context, url string, logger *slog.Logger, opts ...sqlstore.Option) (*sqlstore.DB, error) {
	return sqlstore.OpenPostgres(ctx, url, logger, opts...)
}
