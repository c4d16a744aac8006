// Package socket is the link between a launcher and its sidecar: a unix
// socket in the shared volume (/var/lib/taskguard/defender.sock by default)
// carrying newline-delimited JSON frames. The sidecar pushes the whole policy
// on connect and whenever it changes; the launcher sends audits and its
// inventory, numbered, and the sidecar acknowledges them. When the sidecar
// restarts, the launcher dials it again and sends what was not acknowledged
// (bounded; what overflows is counted and reported). The socket is open to
// every process of the task, so the sidecar serves a bounded number of links
// at once (Server.MaxConns), and a bounded number per container
// (Server.MaxConnsPerGroup: the connecting process's cgroup, read from its
// credentials), and closes the ones made beyond. It is not a
// general RPC layer: one frame type, a few optional fields.
package socket
