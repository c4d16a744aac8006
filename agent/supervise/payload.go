package supervise

import "net/netip"

// MaxPayload bounds the bytes of a connection's first send that the
// supervisor reads for a PayloadHandler.
const MaxPayload = 512

// PayloadEvent is the first data a process sends on an outbound connection
// the handler asked to watch (PayloadHandler.WantPayload): at most
// MaxPayload bytes of the first write, writev, sendto or sendmsg on that
// socket, read while the call waits.
type PayloadEvent struct {
	Caller
	// Addr is the connection's destination.
	Addr netip.AddrPort
	// Data is the start of what the call sends.
	Data []byte
	// Call names the system call ("write", "writev", "sendto", "sendmsg").
	Call string
}

// PayloadHandler is implemented by a Handler that inspects the first bytes
// sent on outbound connections (a Stratum handshake). WantPayload runs after
// an allowed connect; when it says yes, the supervisor watches that socket's
// first send and asks Payload about it, and a Deny refuses that send.
//
// Under ptrace the connecting thread is followed with PTRACE_SYSCALL for at
// most FollowCalls system calls, so write and writev are seen too; under
// seccomp user notification only sendto and sendmsg are supervised, so a
// payload sent with write or writev is not seen there.
type PayloadHandler interface {
	WantPayload(ConnectEvent) bool
	Payload(PayloadEvent) Verdict
}

// FollowCalls bounds the system calls of a thread followed after a connect
// (ptrace only) while it has not sent on the socket yet.
const FollowCalls = 16
