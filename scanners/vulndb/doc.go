// Package vulndb manages taskguard's vulnerability database: a trivy-db bolt
// file (schema 2) with its metadata.json beside it in a cache directory.
//
// Open gives read access for matching (scanners/vuln); Update downloads the
// database as an OCI artifact (ghcr.io/aquasecurity/trivy-db:2 or a mirror)
// unless the cached copy is still fresh; Build writes a database from
// advisory files (Go OSV reports, GitHub npm advisories and Debian bookworm
// security-update facts), for tests and air-gapped use.
//
// trivy-db keeps one bolt handle per process, so only one DB can be open at a
// time: Open waits until the previous DB is closed, OpenContext until then
// or until its context ends.
package vulndb
