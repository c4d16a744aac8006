// Package launcher is the defender's app-container entrypoint: it runs the
// original argv under syscall supervision (package supervise), decides each
// supervised call with the runtime rule that matches the container
// (package policy), and sends audits to the sidecar over the shared-volume
// socket, or as JSON lines in standalone mode.
//
// With no rule and no sidecar there is nothing to enforce: the launcher
// execs the app in its place (or, as PID 1, runs it untraced and reaps
// zombies). With a sidecar it always supervises, because a rule may arrive at
// any time and must apply to the running app.
package launcher
