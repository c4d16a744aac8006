// Package postgres is the console's store on PostgreSQL (pgx v5), for several
// console replicas on one database: every piece of state lives in the
// database, and policy changes wake the long-polls of every replica through
// LISTEN/NOTIFY. Open runs the versioned migrations before it returns.
package postgres
