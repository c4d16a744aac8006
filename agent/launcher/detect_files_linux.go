//go:build linux

package launcher

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/agent/detect"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// The account-file and credential-file detectors use inotify watches the
// launcher sets at start, not system call stops: seccomp cannot read the
// path an open names (a pointer), and stopping every open would slow every
// program. A watch costs nothing to the app, needs no privilege and sees
// writes through any call (write, rename over the file, a new file in
// /etc/sudoers.d). It sees them after they happened and does not name the
// process, so these detectors alert only (prevent alerts too), and the
// audit names a process only when one still holds the file open.

// watchRoot is the root the watched paths are under; tests set it.
var watchRoot = "/"

// accountFiles are the files of /etc whose change adds or changes an account
// or a privilege (T1098, T1136).
var accountFiles = []string{"passwd", "shadow", "group", "gshadow", "sudoers"}

// credentialFiles are cloud and cluster credential files under a home
// directory (T1552.001).
var credentialFiles = []string{".aws/credentials", ".aws/config", ".kube/config", ".docker/config.json", ".config/gcloud/application_default_credentials.json"}

// fileWatch is the launcher's inotify instance.
type fileWatch struct {
	fd   int
	wake [2]int // a pipe that stops the loop
	done chan struct{}
	// dirs maps an /etc-like directory watch to its container path; files
	// a credential file watch to its container path.
	dirs, files map[int32]string
	open        map[string]bool // account files reported since their last close (bounded: maxOpen)
}

// maxOpen bounds fileWatch.open. A name created in /etc/sudoers.d that is
// never closed after a write (a symlink, a directory, a node) keeps its
// entry; a full table starts again, which at worst reports one write
// session twice.
const maxOpen = 256

// reported marks p as reported until its next close.
func (w *fileWatch) reported(p string) {
	if !w.open[p] && len(w.open) >= maxOpen {
		clear(w.open)
	}
	w.open[p] = true
}

// watchFiles sets the watches for the app whose environment is env and
// returns the function that reads the last events and stops them. A watch
// that cannot be set is logged; detection goes on without it.
func (h *handler) watchFiles(env []string) (stop func()) {
	_, stop = h.startFileWatch(env)
	return stop
}

// startFileWatch is watchFiles; it also returns the watch (nil when none
// could be set).
func (h *handler) startFileWatch(env []string) (w *fileWatch, stop func()) {
	noop := func() {}
	if h.det == nil {
		return nil, noop
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		h.log.Warn("file detectors off: inotify", "err", err)
		return nil, noop
	}
	w = &fileWatch{fd: fd, done: make(chan struct{}), dirs: map[int32]string{}, files: map[int32]string{}, open: map[string]bool{}}
	const dirMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE
	for _, d := range []string{"/etc", "/etc/sudoers.d"} {
		if wd, err := unix.InotifyAddWatch(fd, host(d), dirMask); err == nil {
			w.dirs[int32(wd)] = d
		}
	}
	homes := []string{"/root"}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok && v != "" && !slices.Contains(homes, path.Clean(v)) {
			homes = append(homes, path.Clean(v))
		}
	}
	for _, home := range homes {
		for _, f := range credentialFiles {
			p := path.Join(home, f)
			if wd, err := unix.InotifyAddWatch(fd, host(p), unix.IN_OPEN|unix.IN_MODIFY); err == nil {
				w.files[int32(wd)] = p
			}
		}
	}
	if err := unix.Pipe2(w.wake[:], unix.O_CLOEXEC); err != nil {
		unix.Close(fd)
		h.log.Warn("file detectors off: pipe", "err", err)
		return nil, noop
	}
	go h.watchLoop(w)
	return w, func() {
		_, _ = unix.Write(w.wake[1], []byte{1})
		<-w.done
		unix.Close(w.wake[0])
		unix.Close(w.wake[1])
		unix.Close(w.fd)
	}
}

// host is the watched file of container path p.
func host(p string) string { return path.Join(watchRoot, p) }

func (h *handler) watchLoop(w *fileWatch) {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.wake[0]), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
			return
		}
		stopping := pfd[1].Revents != 0
		// Read what is queued; on stop, the events of the app's last calls too.
		for {
			n, err := unix.Read(w.fd, buf)
			if err != nil || n <= 0 {
				break
			}
			h.fileEvents(w, buf[:n])
		}
		if stopping {
			return
		}
	}
}

// fileEvents handles a read of inotify events.
func (h *handler) fileEvents(w *fileWatch, b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return
		}
		name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00"))
		b = b[end:]
		if dir, ok := w.dirs[ev.Wd]; ok {
			h.accountEvent(w, dir, name, ev.Mask)
		} else if p, ok := w.files[ev.Wd]; ok && ev.Mask&(unix.IN_OPEN|unix.IN_MODIFY) != 0 {
			what := "opened"
			if ev.Mask&unix.IN_MODIFY != 0 {
				what = "written"
			}
			h.watchFinding(detect.CredentialFile, p, "Credential file "+p+" "+what)
		}
	}
}

// accountEvent reports a change of an account file: once per write session
// (a modify, until the file is closed), and every rename over it or creation.
func (h *handler) accountEvent(w *fileWatch, dir, name string, mask uint32) {
	if dir == "/etc" && !slices.Contains(accountFiles, name) || name == "" {
		return
	}
	p := path.Join(dir, name)
	var how string
	switch {
	case mask&unix.IN_MOVED_TO != 0:
		how = "replaced (a file renamed over it)"
	case mask&unix.IN_CREATE != 0:
		how = "created"
		w.reported(p)
	case mask&unix.IN_MODIFY != 0:
		if w.open[p] {
			return
		}
		how = "written"
		w.reported(p)
	case mask&unix.IN_CLOSE_WRITE != 0:
		reported := w.open[p]
		delete(w.open, p)
		if reported {
			return
		}
		how = "opened for writing"
	default:
		return
	}
	h.watchFinding(detect.AccountFile, p, "Account file "+p+" "+how)
}

// watchFinding emits the audit of a file-watch finding on container path p:
// the process named is one that still holds the file open, if any.
func (h *handler) watchFinding(d detect.Detector, p, msg string) {
	r := h.rule.Load()
	eff := r.DetectorEffect(d.ID)
	if eff == policy.EffectDisable {
		return
	}
	rule := ""
	if r != nil {
		rule = r.Name
	}
	a := api.Audit{Kind: api.AuditThreat, Effect: policy.EffectAlert, Rule: rule, Severity: "high", Detector: d.ID, Technique: d.Technique}
	pid, outside := holder(host(p), h.self)
	switch {
	case pid > 0:
		proc := &api.ProcessDetail{PID: pid, Tree: h.det.Tree(pid, h.self)}
		if len(proc.Tree) > 0 {
			proc.Path, proc.Argv = proc.Tree[0].Path, proc.Tree[0].Argv
		}
		a.Process = proc
		msg += " by process " + strconv.Itoa(pid) + " (" + proc.Path + ")"
	case outside:
		// Only processes that are not the app's hold it: a launcher run
		// outside a container shares the host's files.
		h.log.Debug("file event of a process outside the app", "file", p)
		return
	default:
		msg += " by a process of the container (a file watch does not name it)"
	}
	if eff == policy.EffectPrevent {
		msg += " (alert only: a file watch sees the change after it happened, so detector " + d.ID + " cannot prevent it)"
	} else {
		msg += " (alert only)"
	}
	a.Message = msg
	h.emit(a)
}

// holder returns an app process (a descendant of self) that has file open,
// or 0; outside says that only processes outside the app have it open.
// Bounded: 4096 processes, 1024 descriptors each.
func holder(file string, self int) (pid int, outside bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	n := 0
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == self {
			continue
		}
		if n++; n > 4096 {
			break
		}
		if !holds(p, file) {
			continue
		}
		if descends(p, self) {
			return p, false
		}
		outside = true
	}
	return 0, outside
}

// holds reports whether process pid has file open.
func holds(pid int, file string) bool {
	base := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(base)
	if err != nil {
		return false
	}
	for i, fd := range fds {
		if i >= 1024 {
			break
		}
		if l, err := os.Readlink(base + "/" + fd.Name()); err == nil && l == file {
			return true
		}
	}
	return false
}

// descends reports whether pid is a descendant of anc (at most 64 levels).
func descends(pid, anc int) bool {
	for range 64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			return false
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			return false
		}
		pp, err := strconv.Atoi(f[1])
		if err != nil || pp <= 1 {
			return anc == pp
		}
		if pp == anc {
			return true
		}
		pid = pp
	}
	return false
}
