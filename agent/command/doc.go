// Package command is the taskguard-defender command tree: `entrypoint -- ARGV...`
// (the launcher prefixed to every app container's argv) and `sidecar`. It
// parses flags and environment and calls agent/launcher and agent/sidecar;
// nothing else lives here.
package command
