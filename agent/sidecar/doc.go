// Package sidecar is the defender's sidecar role: it keeps the current policy
// (long-polled from the console with an ETag, or read from a local file),
// stores the last good one on disk, pushes it to the launchers over the
// shared-volume socket, and ships their audits to the console — aggregated,
// batched, spooled to disk and retried with backoff, with record IDs so a
// retry never duplicates. The WAF proxy is not here (agent/waf).
package sidecar
