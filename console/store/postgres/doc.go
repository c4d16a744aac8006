// Package postgres opens the console's store on PostgreSQL (pgx v5 through
// database/sql), for several console replicas on one database: every piece
// of state lives in the database, and policy changes wake the long-polls of
// every replica through LISTEN/NOTIFY. The store itself is package sqlstore,
// shared with SQLite; Open runs the migrations before it returns. Package
// pgtest starts a throwaway cluster for tests.
package postgres
