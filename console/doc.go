// Package console is the taskguard console server: the HTTP API (and, later,
// web pages) that protects task definitions, serves policy to defenders and
// collects audits and scan results.
//
// This package starts and stops it: it opens the store in the data
// directory, makes the first admin, loads or makes the TLS certificate,
// serves the handler of package server and shuts down gracefully.
// NewCommand is the taskguard-console command tree around it.
package console
