// Package pgtest starts a throwaway PostgreSQL cluster from Debian's
// postgresql package for tests and benchmarks: initdb into a temporary
// directory, pg_ctl start on a unix socket and a random loopback port, torn
// down when the test ends. As root the cluster runs as the "postgres" user
// (PostgreSQL refuses to run as root) through runuser.
package pgtest
