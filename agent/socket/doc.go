// Package socket is the link between a launcher and its sidecar: a unix
// socket in the shared volume (/var/lib/taskguard/defender.sock by default)
// carrying newline-delimited JSON frames. The sidecar pushes the whole policy
// on connect and whenever it changes; the launcher sends audits. It is not a
// general RPC layer: one frame type, three optional fields.
package socket
