// Package console holds the console's benchmarks: audit ingest throughput
// into SQLite and PostgreSQL in batches of 100, and the policy long-poll
// fan-out to 1,000 waiting defenders. Run them with run.sh; they are not
// run by `go test ./...` without -bench.
package console
