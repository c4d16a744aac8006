// Package supervise runs a program as a child and supervises its whole
// process tree (processes and threads) with a seccomp filter: only
// execve/execveat, connect, sendto/sendmsg/sendmmsg, bind and listen reach
// the supervisor; every other system call runs at native speed. Two
// mechanisms carry the stopped calls (Mode): ptrace (SECCOMP_RET_TRACE, the
// supervisor is the tree's tracer) and seccomp user notification
// (SECCOMP_RET_USER_NOTIF, no ptrace at all).
//
// At each stop a Handler decides: allow, or deny (the system call fails with
// EPERM before it takes effect, so a denied program never runs). The package
// knows nothing about policy or audits; it reports what the app does (the
// program and argv of an exec, the address of a connect, the names in a DNS
// query, the port of a listener) and enforces the verdict.
//
// The child is this very binary re-executed with a marker argument: the
// package's init function sees the marker, waits until the tracer has seized
// it, installs the seccomp filter on its main thread and execs the real
// program (the reexec pattern), so the binary needs no cgo.
//
// Run also behaves like an init process: signals are forwarded to the child,
// zombies are reaped, the child's exit status is returned as is.
// Supervision is Linux on amd64 only; elsewhere Run reports ErrUnsupported.
package supervise
