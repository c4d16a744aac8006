// Package sqlstore is the console's one store.Store: a database/sql store
// that runs on SQLite (modernc.org/sqlite, the embedded default, pure Go) and
// on PostgreSQL (pgx's stdlib driver, for N console replicas). The queries and
// the migration list are shared; a small dialect holds what differs between
// the engines: placeholders, column types, how a unique violation looks, the
// migration lock and how a policy change reaches other console processes
// (LISTEN/NOTIFY on PostgreSQL; on SQLite an in-process wake-up plus a poll of
// the file while anyone waits, for a second process such as the CLI).
//
// Open runs the migrations before it returns, and upgrades databases made by
// the older per-engine stores (SQLite schema v2/v3, PostgreSQL schema v1/v2)
// in place. Package storetest is the conformance suite both engines pass.
//
// It is not a general SQL layer: the store decides nothing (who may log in,
// what an audit may hold); the callers do.
package sqlstore
