// Package sqlite opens the console's embedded store: a single SQLite file in
// the data directory, through modernc.org/sqlite (pure Go, so the console
// stays CGO_ENABLED=0). The store itself is package sqlstore, shared with
// PostgreSQL; Open runs the migrations before it returns.
package sqlite

import (
	"context"

	"github.com/taskguard/taskguard/console/store/sqlstore"
)

// Open opens (creating if needed) the database at path and migrates it to the
// latest schema.
func Open(ctx context.Context, path string, opts ...sqlstore.Option) (*sqlstore.DB, error) {
	return sqlstore.OpenSQLite(ctx, path, nil, opts...)
}
