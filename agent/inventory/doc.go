// Package inventory scans the filesystem of the container the launcher runs
// in — "/" as a root filesystem, without /proc, /sys, /dev and the
// defender's own volume — with the analyzers of `taskguard image scan` and
// the compliance checks that apply to a running container (user, setuid
// files, secrets in files and in the environment, sshd, package-manager
// caches), and produces an api.Inventory: packages, OS and findings, never
// file contents.
//
// Cost is bounded so that the app never notices: the scan starts after a
// delay, on one OS thread with the lowest CPU and idle I/O priority, walks
// one file at a time under a CPU budget (it sleeps to stay under a fraction
// of one core), reads no file above a size cap, and is skipped when the
// package databases have not changed since the last one.
//
// It does not match vulnerabilities: the console does that against its own
// vulnerability DB.
package inventory
