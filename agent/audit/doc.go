// Package audit builds the defender's audit records and messages (worded as
// the seeds word them) and writes them: as JSON lines for standalone runs, or
// through a Sink such as the sidecar's console shipper. It does not enforce
// anything and holds no policy.
package audit
