//go:build linux && (amd64 || arm64)

package supervise

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A connection's first payload is watched in two ways. Every mechanism
// supervises sendto and sendmsg, so the socket is put in watch (by its
// "socket:[inode]" link, which a dup keeps) and its first send there is
// inspected. Under ptrace the connecting thread is also followed with
// PTRACE_SYSCALL for its next FollowCalls calls, which shows a write or
// writev on that socket at its syscall-entry stop. A thread of another
// process, or another thread of the same process, that writes on the socket
// is not seen (a Go program may write from any thread): the name, pool port
// and pool DNS detectors cover those.
//
// Following costs two stops per call, so a thread's connections to one
// destination are watched (and, under ptrace, followed) for the first
// doneAfter of them only, whether they sent or not: a program that connects
// to the same server a thousand times pays for the first few only. A
// refused payload resets the count: the next connection is watched again.

// payloads is the tracer's payload state.
type payloads struct {
	watch   map[string]watched // sockets whose first sendto/sendmsg is inspected, by link
	follows map[int]*follow    // threads followed with PTRACE_SYSCALL (ptrace only)
	done    map[doneKey]int    // connections inspected per thread and destination
}

// doneKey is a thread and a destination it connected to.
type doneKey struct {
	tid  int
	addr netip.AddrPort
}

// watched is a socket whose first payload is inspected.
type watched struct {
	addr netip.AddrPort // its destination
	key  doneKey        // its thread and destination, for payloads.done
}

// follow is a thread followed with PTRACE_SYSCALL after a connect.
type follow struct {
	watched
	link string // the socket's /proc fd link, "socket:[N]"
	left int    // syscall-entry stops still followed
}

// maxWatch bounds the watched sockets and the pairs done; a full table is
// emptied (a socket that never sends keeps its entry until then).
const maxWatch = 1024

// doneAfter is the connections of one program to one destination inspected
// before its next ones are not.
const doneAfter = 4

// watchPayload registers the socket fd of tid, just allowed to connect,
// when the handler asks for its first payload.
func (t *tracer) watchPayload(tid, fd int, c ConnectEvent) {
	ph, ok := t.h.(PayloadHandler)
	if !ok || !ph.WantPayload(c) {
		return
	}
	// Keyed by the thread, not its program: reading /proc/TID/exe on every
	// connect cost more than the follow saves (a thread is one program
	// until it execs, and a new thread starts with a fresh count).
	key := doneKey{tid: tid, addr: c.Addr}
	if t.pay.done[key] >= doneAfter {
		return
	}
	link, err := t.fdLink(tid, fd)
	if err != nil || !strings.HasPrefix(link, "socket:") {
		return
	}
	// Counted when watched, not when a payload came: a program that
	// connects and closes without sending must stop paying too.
	t.counted(key)
	if t.pay.watch == nil || len(t.pay.watch) >= maxWatch {
		t.pay.watch = map[string]watched{}
	}
	w := watched{addr: c.Addr, key: key}
	t.pay.watch[link] = w
	if t.notify {
		return
	}
	if t.pay.follows == nil {
		t.pay.follows = map[int]*follow{}
	}
	t.pay.follows[tid] = &follow{watched: w, link: link, left: FollowCalls}
}

// followed reports whether tid is resumed with PTRACE_SYSCALL.
func (t *tracer) followed(tid int) bool {
	return len(t.pay.follows) != 0 && t.pay.follows[tid] != nil
}

// unfollow ends the watch of link and the follow of tid.
func (t *tracer) unfollow(tid int, link string) {
	delete(t.pay.watch, link)
	if f := t.pay.follows[tid]; f != nil && f.link == link {
		delete(t.pay.follows, tid)
	}
}

// counted records one more connection of key watched.
func (t *tracer) counted(key doneKey) {
	if t.pay.done == nil || len(t.pay.done) >= maxWatch {
		t.pay.done = map[doneKey]int{}
	}
	t.pay.done[key]++
}

// watchedSend inspects a sendto or sendmsg on the socket link ("socket:[N]",
// as peerOf read it) when it is watched: its first send only. data reads
// the call's bytes.
func (t *tracer) watchedSend(tid int, link, call string, data func() []byte) Verdict {
	if len(t.pay.watch) == 0 {
		return Allow
	}
	w, ok := t.pay.watch[link]
	if !ok {
		return Allow
	}
	t.unfollow(tid, link)
	return t.payload(tid, w, data(), call)
}

// payload asks the handler about data, the first bytes sent to w.
func (t *tracer) payload(tid int, w watched, data []byte, call string) Verdict {
	ph, ok := t.h.(PayloadHandler)
	v := Allow
	if ok && len(data) != 0 {
		v = ph.Payload(PayloadEvent{Caller: t.caller(tid), Addr: w.addr, Data: data, Call: call})
	}
	if v != Allow {
		// A refused payload: this thread's next connections there are
		// watched again.
		delete(t.pay.done, w.key)
	}
	return v
}

// ptraceSyscallInfo is struct ptrace_syscall_info of linux/ptrace.h with
// its entry (or seccomp) member.
type ptraceSyscallInfo struct {
	Op      uint8
	_       [3]uint8
	Arch    uint32
	IP      uint64
	SP      uint64
	NR      uint64
	Args    [6]uint64
	RetData uint32
	_       uint32
}

// PTRACE_SYSCALL_INFO_ENTRY of linux/ptrace.h.
const syscallInfoEntry = 1

// syscallStop handles a syscall-entry or -exit stop of a followed thread.
func (t *tracer) syscallStop(tid int) {
	t.stops.Followed++
	f := t.pay.follows[tid]
	if f == nil {
		_ = unix.PtraceCont(tid, 0)
		return
	}
	var info ptraceSyscallInfo
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GET_SYSCALL_INFO, uintptr(tid), unsafe.Sizeof(info), uintptr(unsafe.Pointer(&info)), 0, 0); e != 0 {
		delete(t.pay.follows, tid)
		t.cont(tid, 0)
		return
	}
	if info.Op != syscallInfoEntry {
		t.cont(tid, 0)
		return
	}
	if f.left--; f.left <= 0 {
		// Followed to the end without a write: sendto/sendmsg still watch
		// the socket.
		delete(t.pay.follows, tid)
	}
	nr, fd := int(info.NR), int(info.Args[0])
	if info.Arch != nativeArch || nr != unix.SYS_WRITE && nr != unix.SYS_WRITEV {
		t.cont(tid, 0)
		return
	}
	link, err := t.fdLink(tid, fd)
	if err != nil || link != f.link {
		t.cont(tid, 0)
		return
	}
	t.unfollow(tid, link)
	var data []byte
	call := "write"
	if nr == unix.SYS_WRITE {
		data = readUpTo(tid, info.Args[1], info.Args[2], MaxPayload)
	} else {
		call = "writev"
		data = readIovecs(tid, info.Args[1], info.Args[2], MaxPayload)
	}
	if t.payload(tid, f.watched, data, call) == Deny {
		t.refuse(tid, func() error { return denyEntry(tid) })
	}
	t.cont(tid, 0)
}

// readUpTo reads min(size, limit) bytes at addr of tid (nil when unreadable).
func readUpTo(tid int, addr, size uint64, limit int) []byte {
	if size == 0 || limit <= 0 {
		return nil
	}
	b := make([]byte, min(size, uint64(limit)))
	n, err := readMem(tid, addr, b)
	if err != nil {
		return nil
	}
	return b[:n]
}

// readIovecs gathers up to limit bytes of the first 8 iovecs at addr.
func readIovecs(tid int, addr, count uint64, limit int) []byte {
	var data []byte
	for i := uint64(0); i < min(count, 8) && len(data) < limit; i++ {
		var iov [16]byte
		if _, err := readMem(tid, addr+16*i, iov[:]); err != nil {
			break
		}
		base, n := binary.NativeEndian.Uint64(iov[:8]), binary.NativeEndian.Uint64(iov[8:])
		data = append(data, readUpTo(tid, base, n, limit-len(data))...)
	}
	return data
}
