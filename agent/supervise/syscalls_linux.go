//go:build linux && (amd64 || arm64)

package supervise

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	maxString = 4096 // longest path or argument read from the tracee
	maxArgs   = 256  // argv entries read for an audit
	maxDNS    = 4096 // bytes of a send inspected for a DNS query
)

// decide reads what a native supervised call is about and asks the handler.
func (t *tracer) decide(tid, nr int, args [6]uint64) Verdict {
	var v Verdict
	switch nr {
	case unix.SYS_EXECVE:
		v = t.exec(tid, unix.AT_FDCWD, args[0], args[1], 0)
	case unix.SYS_EXECVEAT:
		v = t.exec(tid, int(int32(args[0])), args[1], args[2], int(args[4]))
	case unix.SYS_CONNECT:
		v = t.connect(tid, int(args[0]), args[1], args[2])
	case unix.SYS_SENDTO:
		v = t.sendto(tid, int(args[0]), args[1], args[2], args[4], args[5])
	case unix.SYS_SENDMSG:
		v = t.sendmsg(tid, int(args[0]), args[1])
	case unix.SYS_SENDMMSG:
		// struct mmsghdr is a msghdr and a count, 64 bytes; look at the
		// first few (a resolver sends A and AAAA together).
		for i := uint64(0); i < min(args[2], 8) && v == Allow; i++ {
			v = t.sendmsg(tid, int(args[0]), args[1]+64*i)
		}
	case unix.SYS_LISTEN:
		v = t.listen(tid, int(args[0]))
	case unix.SYS_BIND:
		v = t.bind(tid, int(args[0]), args[1], args[2])
	case unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV:
		v = t.inject(tid, nr, args)
	}
	return v
}

// refuse applies a Deny with apply. When apply fails the process is killed,
// so the call cannot run; the handler learns what happened either way.
func (t *tracer) refuse(tid int, apply func() error) {
	err := apply()
	o := Refused
	if err != nil {
		o = killTracee(tid, err)
	}
	t.h.Enforced(tid, o, err)
}

// killTracee kills the process of tid, stopped at a supervised call that
// could not be refused (cause). A fatal signal makes the kernel skip the call
// when the tracee resumes. ESRCH from ptrace means the tracee left its stop,
// which only SIGKILL from elsewhere does: it was gone before our answer.
func killTracee(tid int, cause error) Outcome {
	err := unix.Kill(tid, unix.SIGKILL)
	switch {
	case errors.Is(cause, unix.ESRCH):
		return Gone
	case err == unix.ESRCH:
		return Gone
	case err != nil:
		return Unenforced
	}
	return Killed
}

// readMem reads len(b) bytes at addr of tid's memory.
func readMem(tid int, addr uint64, b []byte) (int, error) {
	if addr == 0 || len(b) == 0 {
		return 0, errors.New("null pointer")
	}
	local := []unix.Iovec{{Base: &b[0], Len: uint64(len(b))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	return unix.ProcessVMReadv(tid, local, remote, 0)
}

// readString reads a NUL-terminated string, never crossing into an unmapped page.
func readString(tid int, addr uint64) (string, error) {
	const page = 4096
	// Most paths are short: a first read of 256 bytes (within the page)
	// into a stack buffer, no allocation but the string.
	var first [256]byte
	n := min(len(first), page-int(addr%page))
	got, err := readMem(tid, addr, first[:n])
	if err == nil && got == 0 {
		err = unix.EFAULT
	}
	if err != nil {
		return "", fmt.Errorf("read string at %#x: %w", addr, err)
	}
	if i := bytes.IndexByte(first[:got], 0); i >= 0 {
		return string(first[:i]), nil
	}
	out := append([]byte(nil), first[:got]...)
	addr += uint64(got)
	for len(out) < maxString {
		n := page - int(addr%page)
		buf := make([]byte, n)
		got, err := readMem(tid, addr, buf)
		if err == nil && got == 0 {
			err = unix.EFAULT
		}
		if err != nil {
			return "", fmt.Errorf("read string at %#x: %w", addr, err)
		}
		if i := bytes.IndexByte(buf[:got], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:got]...)
		addr += uint64(got)
	}
	return string(out), nil
}

func readArgv(tid int, addr uint64) []string {
	var argv []string
	for i := 0; addr != 0 && i < maxArgs; i++ {
		var p [8]byte
		if _, err := readMem(tid, addr+uint64(8*i), p[:]); err != nil {
			break
		}
		ptr := binary.NativeEndian.Uint64(p[:])
		if ptr == 0 {
			break
		}
		s, err := readString(tid, ptr)
		if err != nil {
			break
		}
		argv = append(argv, s)
	}
	return argv
}

func (t *tracer) exec(tid, dirfd int, pathAddr, argvAddr uint64, flags int) Verdict {
	name, err := readString(tid, pathAddr)
	if err != nil {
		return Allow // the kernel fails the exec with EFAULT itself
	}
	var base string
	byFD := name == "" && flags&unix.AT_EMPTY_PATH != 0
	switch {
	case byFD: // fexecve: the program is an open file, maybe a memfd or deleted
		name, _ = os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", tid, dirfd))
	case strings.HasPrefix(name, "/"):
	case dirfd == unix.AT_FDCWD:
		base, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", tid))
	default:
		base, _ = os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", tid, dirfd))
	}
	path := name
	if base != "" {
		path = filepath.Join(base, name)
	}
	resolved := path
	var ctime time.Time
	if fdPath, ok := procFD(tid, path); ok {
		// /proc/self/fd/N (or /proc/PID/fd/N): the kernel runs the open
		// file, a memfd or a deleted file maybe, which a lookup in the
		// tracee's root cannot find (and /proc/self there names us).
		target, err := os.Readlink(fdPath)
		if err != nil {
			return Allow // no such open file: the kernel fails the exec itself
		}
		resolved = target
	} else if !byFD {
		// The file the kernel will run, looked up in the tracee's root,
		// which may differ from ours.
		if resolved, ctime, err = resolveExec(tid, path); err != nil {
			// Nothing to run there (a shell trying each PATH entry):
			// the kernel fails this exec itself, no program starts.
			return Allow
		}
	}
	if !t.notify { // with ptrace, the exec event names the new program by this path
		p := t.procs[tid]
		if p == nil {
			p = &proc{}
			t.procs[tid] = p
		}
		p.pending = path
	}
	return t.h.Exec(ExecEvent{PID: tid, Path: path, Resolved: resolved, Ctime: ctime,
		parent: func() string { return t.exeOf(tid) },
		argv:   func() []string { return readArgv(tid, argvAddr) },
	})
}

func readSockaddr(tid int, addr, size uint64) (netip.AddrPort, error) {
	if addr == 0 || size < 2 {
		return netip.AddrPort{}, errNotIP
	}
	b := make([]byte, min(size, 128))
	n, err := readMem(tid, addr, b)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return parseSockaddr(b[:n])
}

func (t *tracer) connect(tid, fd int, addr, size uint64) Verdict {
	t.forgetPeers()
	ap, err := readSockaddr(tid, addr, size)
	if err != nil {
		return Allow // unix sockets and the like; bad pointers fail in the kernel
	}
	c := ConnectEvent{Caller: t.caller(tid), Addr: ap}
	v := t.h.Connect(c)
	switch {
	case v == Allow && ap.Port() == 53:
		t.redirectDNS(tid, fd, addr, size, ap)
	case v == Allow:
		t.watchPayload(tid, fd, c)
	}
	return v
}

// socketOf duplicates the tracee's socket fd into this process (pidfd_getfd)
// and calls f on it.
func socketOf(tid, fd int, f func(int) error) error {
	pidfd, err := unix.PidfdOpen(tid, 0)
	if err != nil { // tid is not a thread-group leader (EINVAL or ENOENT by kernel)
		if tgid := tgidOf(tid); tgid != tid {
			pidfd, err = unix.PidfdOpen(tgid, 0)
		}
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", tid, err)
	}
	defer unix.Close(pidfd)
	local, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd %d/%d: %w", tid, fd, err)
	}
	defer unix.Close(local)
	return f(local)
}

func tgidOf(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return tid
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n
			}
		}
	}
	return tid
}

func sockaddrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// maxFDDirs bounds the /proc/TID/fd directories the tracer holds open.
const maxFDDirs = 256

// fdLink is what tid's open file fd links to ("socket:[INODE]" for a
// socket). It is read relative to /proc/TID/fd, opened once per thread:
// that skips the walk of /proc and the lookup of the task each time, half
// the cost of a readlink of the full path (a send or a watched connect
// makes one). A directory kept open names the task it was opened for,
// never a later one that got the same number: for a task that ended it
// fails (ENOENT), and is opened again.
func (t *tracer) fdLink(tid, fd int) (string, error) {
	var buf [unix.PathMax]byte
	name := strconv.Itoa(fd)
	for range 2 {
		d, held := t.fdDirs[tid]
		if !held {
			p := procRel(strconv.Itoa(tid) + "/fd")
			var err error
			if d, err = unix.Openat(p.dirfd, p.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return "", &os.PathError{Op: "open", Path: "/proc/" + strconv.Itoa(tid) + "/fd", Err: err}
			}
			if t.fdDirs == nil || len(t.fdDirs) >= maxFDDirs {
				t.closeFDDirs()
				t.fdDirs = map[int]int{}
			}
			t.fdDirs[tid] = d
		}
		n, err := unix.Readlinkat(d, name, buf[:])
		switch {
		case err == nil && n < len(buf):
			return string(buf[:n]), nil
		case err == nil:
			return "", unix.ENAMETOOLONG
		case held && (err == unix.ENOENT || err == unix.ESRCH):
			// The directory of an ended task whose number came back, or
			// fd is not open: look once more from a fresh directory.
			unix.Close(d)
			delete(t.fdDirs, tid)
			continue
		}
		return "", &os.PathError{Op: "readlink", Path: "/proc/" + strconv.Itoa(tid) + "/fd/" + name, Err: err}
	}
	return "", &os.PathError{Op: "readlink", Path: "/proc/" + strconv.Itoa(tid) + "/fd/" + name, Err: unix.ENOENT}
}

// closeFDDirs closes the directories fdLink holds.
func (t *tracer) closeFDDirs() {
	for _, d := range t.fdDirs {
		unix.Close(d)
	}
	clear(t.fdDirs)
}

// peerOf returns the peer of the tracee's connected socket fd. Peers are
// cached by socket inode, so a send on a known socket costs one readlink
// instead of a pidfd round trip (and, from a thread that is not its
// process's leader, a read of /proc/TID/status): the peer of a TCP socket
// never changes, and that of a datagram socket only by a connect, which
// clears the datagram cache (forgetPeers).
func (t *tracer) peerOf(tid, fd int) (ap netip.AddrPort, link string, ok bool) {
	link, err := t.fdLink(tid, fd)
	if err != nil || !strings.HasPrefix(link, "socket:") {
		return netip.AddrPort{}, "", false
	}
	if ap, ok := t.tcpPeers[link]; ok {
		return ap, link, ap.IsValid()
	}
	if ap, ok := t.udpPeers[link]; ok {
		return ap, link, ap.IsValid()
	}
	typ := -1
	_ = socketOf(tid, fd, func(s int) error {
		var err error
		if typ, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
			typ = -1
		}
		sa, err := unix.Getpeername(s)
		if err != nil {
			return err
		}
		ap, ok = sockaddrPort(sa)
		return nil
	})
	cache := func(m map[string]netip.AddrPort) map[string]netip.AddrPort {
		if m == nil || len(m) >= 8192 {
			m = map[string]netip.AddrPort{}
		}
		m[link] = ap
		return m
	}
	switch {
	case !ok:
	case typ == unix.SOCK_STREAM:
		t.tcpPeers = cache(t.tcpPeers)
	case typ == unix.SOCK_DGRAM:
		t.udpPeers = cache(t.udpPeers)
	}
	return ap, link, ok
}

// forgetPeers clears the datagram peers: a connect (or a 32-bit call the
// supervisor does not decode, which may be one) may give a socket another.
func (t *tracer) forgetPeers() {
	if len(t.udpPeers) != 0 {
		clear(t.udpPeers)
	}
}

// dns inspects data sent to dest; only port 53 is looked at.
func (t *tracer) dns(tid int, dest netip.AddrPort, data []byte) Verdict {
	if dest.Port() != 53 {
		return Allow
	}
	names, err := dnsQueryNames(data)
	if err != nil {
		return Allow
	}
	return t.h.DNS(DNSEvent{Caller: t.caller(tid), Names: names, Server: dest})
}

func (t *tracer) sendto(tid, fd int, buf, size, dest, destLen uint64) Verdict {
	var ap netip.AddrPort
	var err error
	if dest != 0 {
		if ap, err = readSockaddr(tid, dest, destLen); err != nil {
			return Allow
		}
	} else {
		var link string
		var ok bool
		if ap, link, ok = t.peerOf(tid, fd); !ok {
			return Allow
		}
		if ap.Port() != 53 {
			return t.watchedSend(tid, link, "sendto", func() []byte { return readUpTo(tid, buf, size, MaxPayload) })
		}
	}
	if ap.Port() != 53 || size == 0 {
		return Allow
	}
	b := make([]byte, min(size, maxDNS))
	n, err := readMem(tid, buf, b)
	if err != nil {
		return Allow
	}
	return t.dns(tid, ap, b[:n])
}

func (t *tracer) sendmsg(tid, fd int, msgAddr uint64) Verdict {
	// struct msghdr on amd64: name *, namelen u32, pad, iov *, iovlen u64, ...
	var raw [56]byte
	if _, err := readMem(tid, msgAddr, raw[:]); err != nil {
		return Allow
	}
	name := binary.NativeEndian.Uint64(raw[0:])
	nameLen := uint64(binary.NativeEndian.Uint32(raw[8:]))
	iovAddr := binary.NativeEndian.Uint64(raw[16:])
	iovLen := binary.NativeEndian.Uint64(raw[24:])
	var ap netip.AddrPort
	var err error
	if name != 0 {
		if ap, err = readSockaddr(tid, name, nameLen); err != nil {
			return Allow
		}
	} else {
		var link string
		var ok bool
		if ap, link, ok = t.peerOf(tid, fd); !ok {
			return Allow
		}
		if ap.Port() != 53 {
			return t.watchedSend(tid, link, "sendmsg", func() []byte { return readIovecs(tid, iovAddr, iovLen, MaxPayload) })
		}
	}
	if ap.Port() != 53 || iovAddr == 0 {
		return Allow
	}
	// Gather the first iovecs up to maxDNS bytes (TCP DNS often sends the
	// length prefix and the message as two iovecs).
	var data []byte
	for i := uint64(0); i < min(iovLen, 8) && len(data) < maxDNS; i++ {
		var iov [16]byte
		if _, err := readMem(tid, iovAddr+16*i, iov[:]); err != nil {
			break
		}
		base, n := binary.NativeEndian.Uint64(iov[:8]), binary.NativeEndian.Uint64(iov[8:])
		if n == 0 {
			continue
		}
		b := make([]byte, min(n, uint64(maxDNS-len(data))))
		got, err := readMem(tid, base, b)
		if err != nil {
			break
		}
		data = append(data, b[:got]...)
	}
	return t.dns(tid, ap, data)
}

func (t *tracer) listen(tid, fd int) Verdict {
	var port uint16
	_ = socketOf(tid, fd, func(s int) error {
		sa, err := unix.Getsockname(s)
		if err != nil {
			return err
		}
		if ap, ok := sockaddrPort(sa); ok {
			port = ap.Port()
		}
		return nil
	})
	if port == 0 {
		return Allow
	}
	return t.h.Listen(ListenEvent{Caller: t.caller(tid), Port: port, Protocol: "tcp"})
}

// bind reports UDP sockets bound to a fixed port: UDP servers never call listen.
func (t *tracer) bind(tid, fd int, addr, size uint64) Verdict {
	ap, err := readSockaddr(tid, addr, size)
	if err != nil || ap.Port() == 0 {
		return Allow
	}
	udp := false
	_ = socketOf(tid, fd, func(s int) error {
		typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
		udp = err == nil && typ == unix.SOCK_DGRAM
		return err
	})
	if !udp {
		return Allow
	}
	return t.h.Listen(ListenEvent{Caller: t.caller(tid), Port: ap.Port(), Protocol: "udp"})
}

func (t *tracer) caller(tid int) Caller {
	return Caller{PID: tid, from: t}
}

// exeOf is the executable of tid as audits word it (the name it was called by).
func (t *tracer) exeOf(tid int) string {
	if p := t.known(tid); p != nil && p.exe != "" {
		return p.exe
	}
	return shownExe(tid, "")
}

// realOf is the file tid really runs, as the kernel resolved it at its exec.
func (t *tracer) realOf(tid int) string {
	if p := t.known(tid); p != nil && p.real != "" {
		return p.real
	}
	real, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", tid))
	return real
}

// known returns what the tracer knows of tid, brought up to date: with no
// exec events, a process that ran a new program since is noticed by its
// /proc/PID/exe, and named by the exec it asked for last.
func (t *tracer) known(tid int) *proc {
	p := t.procs[tid]
	if p == nil {
		return nil
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", tid))
	if err == nil && real != p.real {
		p.exe, p.real = shownExe(tid, p.pending), real
	}
	return p
}

// maxLinks is the kernel's limit of symlinks followed in one lookup.
const maxLinks = 40

// resolveIn resolves every symlink of the absolute path p the way the kernel
// looks it up for process tid: inside tid's root directory (/proc/tid/root),
// so an absolute link target starts again at that root, never at ours. It
// returns the path of the file within that root.
func resolveIn(tid int, p string) (string, error) {
	return resolveInRoot("/proc/"+strconv.Itoa(tid)+"/root", p)
}

// resolveInRoot is resolveIn for the root directory root: the kernel's
// lookup when it can tell, else the walk.
func resolveInRoot(root, p string) (string, error) {
	if out, err, ok := resolveByKernel(root, p); ok {
		return out, err
	}
	return resolveUnder(root, p)
}

// resolveExec is resolveIn for an exec: it also returns the status change
// time of the file found, read from the file the lookup opened (zero when
// the lookup was a walk): the drift detector needs no second lookup
// through /proc/PID/root.
func resolveExec(tid int, p string) (string, time.Time, error) {
	root := "/proc/" + strconv.Itoa(tid) + "/root"
	var st unix.Stat_t
	if out, err, ok := resolveByKernelStat(procRel(strconv.Itoa(tid)+"/root"), p, &st); ok {
		var ctime time.Time
		if err == nil && st.Ino != 0 {
			ctime = time.Unix(st.Ctim.Unix())
		}
		return out, ctime, err
	}
	out, err := resolveUnder(root, p)
	return out, time.Time{}, err
}

// resolveByKernel is resolveIn done by the kernel in one lookup: openat2
// with RESOLVE_IN_ROOT on tid's root directory (absolute link targets and
// ".." stay inside it), then the opened file's path read back and made
// relative to that root. It costs six cheap system calls where walking the
// path costs one lstat of /proc/PID/root/... per component. ok is false
// when the answer cannot be trusted (openat2 missing, a file unlinked
// meanwhile, a path outside the root's): resolveUnder decides then.
func resolveByKernel(root, p string) (out string, err error, ok bool) {
	return resolveByKernelStat(dirPath{dirfd: unix.AT_FDCWD, path: root}, p, nil)
}

// dirPath is a path relative to an open directory (or to the working
// directory with unix.AT_FDCWD).
type dirPath struct {
	dirfd int
	path  string
}

func (d dirPath) String() string {
	if d.dirfd == unix.AT_FDCWD {
		return d.path
	}
	if d.dirfd == procDir().dirfd {
		return "/proc/" + d.path
	}
	return d.path
}

// openDir opens a directory of this process for good (O_PATH), or returns
// -1: paths under it are then looked up from the root.
func openDir(p string) int {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// procDir and selfFDDir are /proc and /proc/self/fd, opened once: a
// lookup relative to them skips the walk of "/proc/..." (and of the magic
// link /proc/self) that every exec paid twice. /proc/self/fd names this
// process's file table, which all its threads share.
var (
	procDir = sync.OnceValue(func() dirPath {
		if fd := openDir("/proc"); fd >= 0 {
			return dirPath{dirfd: fd}
		}
		return dirPath{dirfd: unix.AT_FDCWD, path: "/proc/"}
	})
	selfFDDir = sync.OnceValue(func() dirPath {
		if fd := openDir("/proc/self/fd"); fd >= 0 {
			return dirPath{dirfd: fd}
		}
		return dirPath{dirfd: unix.AT_FDCWD, path: "/proc/self/fd/"}
	})
)

// procRel is /proc/rel, relative to procDir.
func procRel(rel string) dirPath {
	d := procDir()
	return dirPath{dirfd: d.dirfd, path: d.path + rel}
}

// resolveByKernelStat is resolveByKernel that also fills st, when not nil,
// with the status of the file it found (st.Ino is 0 when the lookup was
// not the kernel's or fstat failed): the very file the path resolved to,
// at no second lookup.
//
// A root that is this process's own (the same mount and directory, which
// the supervised tree keeps unless it chroots or enters another mount
// namespace) is told by one statx and looked up from ourRootDir, opened
// once: that saves opening and closing the root and the statx of
// isOurRoot, two of the exec decision's seven system calls.
func resolveByKernelStat(root dirPath, p string, st *unix.Stat_t) (out string, err error, ok bool) {
	ours, told := false, false
	if id, known := rootIDOf(root.dirfd, root.path, 0); known {
		if our, have := ourRoot(); have {
			ours, told = id == our, true
		}
	}
	rfd := -1
	if ours {
		rfd = ourRootDir()
	}
	if rfd < 0 {
		if rfd, err = unix.Openat(root.dirfd, root.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return "", &os.PathError{Op: "open", Path: root.String(), Err: err}, true
		}
		defer unix.Close(rfd)
		// A root the statx above found to be another is named by the
		// directory's path (if it became ours meanwhile, that path is
		// "/", which is right too); any other is told by the directory
		// opened.
		if !told || ours {
			ours = isOurRoot(rfd)
		}
	}
	fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	switch err {
	case nil:
	case unix.ENOENT, unix.ENOTDIR:
		return "", &os.PathError{Op: "resolve", Path: p, Err: err}, true
	default:
		// ENOSYS (before Linux 5.6), EPERM of a sandbox, EAGAIN of a
		// rename race, and ELOOP or EXDEV of a magic link (/proc/self/root
		// in the path), which RESOLVE_IN_ROOT does not follow but an exec does.
		return "", nil, false
	}
	defer unix.Close(fd)
	if st != nil && unix.Fstat(fd, st) != nil {
		*st = unix.Stat_t{}
	}
	base := "/"
	if !ours {
		if base, err = fdPath(rfd); err != nil {
			return "", nil, false
		}
	}
	file, err := fdPath(fd)
	if err != nil || strings.HasSuffix(file, " (deleted)") || !strings.HasPrefix(file, "/") {
		return "", nil, false
	}
	switch {
	case base == "/":
		return file, nil, true
	case file == base:
		return "/", nil, true
	case strings.HasPrefix(file, base) && file[len(base)] == '/':
		return file[len(base):], nil, true
	}
	return "", nil, false
}

// rootID identifies a directory with its mount: the same (mount, inode)
// is the same directory as seen from any mount namespace.
type rootID struct {
	mnt uint64
	dev uint64
	ino uint64
}

func rootIDOf(dirfd int, path string, flags int) (rootID, bool) {
	var st unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, unix.STATX_INO|unix.STATX_MNT_ID, &st); err != nil || st.Mask&unix.STATX_MNT_ID == 0 {
		return rootID{}, false
	}
	return rootID{mnt: st.Mnt_id, dev: uint64(st.Dev_major)<<32 | uint64(st.Dev_minor), ino: st.Ino}, true
}

// ourRoot is this process's root directory, read once.
var ourRoot = sync.OnceValues(func() (rootID, bool) { return rootIDOf(unix.AT_FDCWD, "/", 0) })

// ourRootDir is this process's root directory, opened once (O_PATH), or
// -1. The supervisor never changes its root, so it stays the directory
// ourRoot describes.
var ourRootDir = sync.OnceValue(func() int { return openDir("/") })

// isOurRoot reports whether dirfd is this process's root directory (the
// same mount, not a bind mount of it elsewhere): the kernel's names of the
// files under it then need no prefix removed.
func isOurRoot(dirfd int) bool {
	our, ok := ourRoot()
	if !ok {
		return false
	}
	id, ok := rootIDOf(dirfd, "", unix.AT_EMPTY_PATH)
	return ok && id == our
}

// fdPath is the path of this process's open file fd, as the kernel names it.
func fdPath(fd int) (string, error) {
	var buf [unix.PathMax]byte
	d := selfFDDir()
	n, err := unix.Readlinkat(d.dirfd, d.path+strconv.Itoa(fd), buf[:])
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}

// resolveUnder is resolveIn for the root directory root.
func resolveUnder(root, p string) (string, error) {
	out := "/"
	rest := strings.Split(p, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			out = pathpkg.Dir(out)
			continue
		}
		next := pathpkg.Join(out, c)
		fi, err := os.Lstat(root + next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if len(rest) > 0 && !fi.IsDir() {
				return "", &os.PathError{Op: "resolve", Path: p, Err: unix.ENOTDIR}
			}
			out = next
			continue
		}
		if links++; links > maxLinks {
			return "", &os.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		target, err := os.Readlink(root + next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			out = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return out, nil
}

// procFD reports whether p names an open file through /proc
// (/proc/self/fd/N, /proc/thread-self/fd/N, /proc/PID/fd/N,
// /proc/PID/task/TID/fd/N) and returns that link as the supervisor reads it.
func procFD(tid int, p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[1] == "fd":
	case len(parts) == 5 && parts[1] == "task" && parts[3] == "fd":
	default:
		return "", false
	}
	if _, err := strconv.Atoi(parts[len(parts)-1]); err != nil {
		return "", false
	}
	switch parts[0] {
	case "self", "thread-self":
		parts[0] = strconv.Itoa(tid)
	default:
		if _, err := strconv.Atoi(parts[0]); err != nil {
			return "", false
		}
	}
	return "/proc/" + strings.Join(parts, "/"), true
}
