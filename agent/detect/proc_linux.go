package detect

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/console/api"
)

// KernelNow is the kernel's file-time clock now: the ctime of a fresh
// memfd. File times come from a coarse clock that lags time.Now by up to a
// tick, so Start must be taken on it, or a file written right after start
// could look older than the start.
func KernelNow() time.Time {
	fd, err := unix.MemfdCreate("taskguard-start", unix.MFD_CLOEXEC)
	if err != nil {
		return time.Now()
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return time.Now()
	}
	return time.Unix(st.Ctim.Unix())
}

// ctime is the change time of file as the process pid sees it (through its
// root). User space cannot set a ctime back (utimensat sets atime and mtime
// only), so a ctime after Start means the file was written, renamed,
// chmod'ed or linked after the container started.
func (en *Engine) ctime(pid int, file string) (time.Time, bool) {
	var st unix.Stat_t
	if err := unix.Stat(en.proc()+"/"+itoa(pid)+"/root"+file, &st); err != nil {
		return time.Time{}, false
	}
	return time.Unix(st.Ctim.Unix()), true
}

// socketStdio reports which of the process's stdin/stdout is an Internet
// socket ("stdin", "socket:[N] (tcp 127.0.0.1:4444)"), or "" for none. A
// Unix socket (a supervisor pipe, systemd) is not a network socket.
func (en *Engine) socketStdio(pid int) (string, string) {
	base := en.proc() + "/" + itoa(pid)
	for fd, name := range []string{"stdin", "stdout"} {
		l, err := os.Readlink(base + "/fd/" + itoa(fd))
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		inode := strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")
		for _, t := range []string{"tcp", "tcp6", "udp", "udp6"} {
			if peer, ok := findInode(base+"/net/"+t, inode); ok {
				return name, l + " (" + t + " peer " + peer + ")"
			}
		}
	}
	return "", ""
}

// findInode looks inode up in a /proc/net/tcp-style table and returns the
// remote address column. The table is bounded to 64k lines.
func findInode(table, inode string) (string, bool) {
	f, err := os.Open(table)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for n := 0; sc.Scan() && n < 65536; n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[9] == inode {
			return hexAddr(fields[2]), true
		}
	}
	return "", false
}

// hexAddr words a /proc/net address (0100007F:115C) as ip:port.
func hexAddr(s string) string {
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil {
		return s
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return s
	}
	// Each 32-bit word is in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	ip := netipFrom(b)
	return ip + ":" + strconv.FormatUint(port, 10)
}

// argv0 is the process's argv[0] ("" when unreadable).
func (en *Engine) argv0(pid int) string {
	b, err := readBounded(en.proc()+"/"+itoa(pid)+"/cmdline", 4096)
	if err != nil {
		return ""
	}
	a, _, _ := bytes.Cut(b, []byte{0})
	return string(a)
}

// MaxTree bounds the process tree of an audit.
const MaxTree = 16

// Tree reads pid's ancestry from /proc, pid first, up to and excluding stop
// (the launcher) or pid 1; argv bounded to 4 KiB per process.
func (en *Engine) Tree(pid, stop int) []api.ProcessAncestor {
	var out []api.ProcessAncestor
	for p := pid; p > 1 && p != stop && len(out) < MaxTree; {
		base := en.proc() + "/" + itoa(p)
		a := api.ProcessAncestor{PID: p}
		a.Path, _ = os.Readlink(base + "/exe")
		if b, err := readBounded(base+"/cmdline", 4096); err == nil {
			for s := range bytes.SplitSeq(bytes.TrimRight(b, "\x00"), []byte{0}) {
				a.Argv = append(a.Argv, string(s))
			}
		}
		out = append(out, a)
		st, err := readBounded(base+"/stat", 4096)
		if err != nil {
			break
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			break
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) < 2 {
			break
		}
		pp, err := strconv.Atoi(f[1])
		if err != nil || pp == p {
			break
		}
		p = pp
	}
	return out
}

func readBounded(name string, n int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// MaxHash bounds the files Hash reads.
const MaxHash = 64 << 20

// Hash returns the hex SHA-256 of file as pid sees it, "" when it cannot be
// read or is larger than MaxHash.
func (en *Engine) Hash(pid int, file string) string {
	if file == "" || fileless(file) {
		return ""
	}
	f, err := os.Open(en.proc() + "/" + itoa(pid) + "/root" + file)
	if err != nil {
		return ""
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > MaxHash {
		return ""
	}
	// A file found again (a loop running a payload) is not read again
	// while its identity and change time stay the same.
	key := hashKey{dev: st.Dev, ino: st.Ino, size: st.Size, ctime: st.Ctim.Nano()}
	en.mu.Lock()
	sum, ok := en.hashes[key]
	en.mu.Unlock()
	if ok {
		return sum
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, MaxHash)); err != nil {
		return ""
	}
	sum = hex.EncodeToString(h.Sum(nil))
	en.mu.Lock()
	if en.hashes == nil || len(en.hashes) >= maxHashes {
		en.hashes = map[hashKey]string{}
	}
	en.hashes[key] = sum
	en.mu.Unlock()
	return sum
}

// maxHashes bounds Hash's cache.
const maxHashes = 1024

type hashKey struct {
	dev, ino    uint64
	size, ctime int64
}

// exe is the executable of pid ("" when unreadable).
func (en *Engine) exe(pid int) string {
	l, _ := os.Readlink(en.proc() + "/" + itoa(pid) + "/exe")
	return l
}
