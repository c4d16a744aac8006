// Package sidecar is the defender's sidecar role: it keeps the current policy
// (long-polled from the console with an ETag, or read from a local file),
// stores the last good one on disk, pushes it to the launchers over the
// shared-volume socket, and ships their audits to the console — aggregated,
// batched, spooled to disk and retried with backoff, with record IDs so a
// retry never duplicates. With Options.WAFTask it also runs an agent/waf
// reverse proxy for each of the policy's WAF rules that applies to the task
// (waf.go); the proxy itself lives in agent/waf.
package sidecar
