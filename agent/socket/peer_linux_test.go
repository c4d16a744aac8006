//go:build linux

package socket

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// The test binary plays a peer in a process of its own when
// TASKGUARD_SOCKET_PEER names a role (see peerMain).
func TestMain(m *testing.M) {
	if role := os.Getenv("TASKGUARD_SOCKET_PEER"); role != "" {
		os.Exit(peerMain(role, os.Getenv("TASKGUARD_SOCKET_PATH")))
	}
	os.Exit(m.Run())
}

// peerMain runs one peer role against the socket at path:
//   - "hoard": opens TASKGUARD_SOCKET_LINKS links, one after another, and
//     reads each one's first frame (a policy: served; the end: refused);
//     prints "served N", then holds the served links until its stdin ends.
//   - "launcher": links as the launcher does (socket.Dial, retried; the
//     client links again when refused), waits for the policy, sends one
//     audit, closes (waiting for its acknowledgement) and exits 0.
//   - "sleep": waits until its stdin ends.
func peerMain(role, path string) int {
	switch role {
	case "hoard":
		n, _ := strconv.Atoi(os.Getenv("TASKGUARD_SOCKET_LINKS"))
		var held []net.Conn
		for range n {
			c, err := net.Dial("unix", path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			var f Frame
			if err := json.NewDecoder(c).Decode(&f); err != nil || f.Policy == nil {
				c.Close()
				continue
			}
			held = append(held, c)
		}
		fmt.Printf("served %d\n", len(held))
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "launcher":
		var cl *Client
		var err error
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if cl, err = Dial(path, policy.Identity{Container: "b"}); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		got := make(chan struct{})
		var once sync.Once
		go func() { _ = cl.Policies(func(*policy.Policy) { once.Do(func() { close(got) }) }) }()
		<-got
		if err := cl.Send(context.Background(), []api.Audit{{ID: "b-1", Container: "b", Message: "launcher of b"}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := cl.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "sleep":
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	}
	return 2
}

// testCgroups makes n cgroups (v2) for the test's children and returns
// their directories; they are removed at the end. Without a writable
// cgroup v2 hierarchy (root) the test is skipped, a failure under CI=true.
func testCgroups(t *testing.T, n int) []string {
	t.Helper()
	root := ""
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			// ... mount-point ... - cgroup2 source options
			if l, r, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(r, "cgroup2 ") {
				if f := strings.Fields(l); len(f) > 4 {
					root = f[4]
					break
				}
			}
		}
	}
	if root == "" {
		testenv.Skip(t, "no cgroup v2 hierarchy is mounted")
	}
	// Those a test run that was killed left (its cleanup did not run).
	stale, _ := filepath.Glob(filepath.Join(root, "taskguard-peers-*-*"))
	for _, d := range stale {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), "taskguard-peers-"), "-")
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			_ = os.Remove(d)
		}
	}
	var dirs []string
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("taskguard-peers-%d-%d", os.Getpid(), i))
		if err := os.Mkdir(d, 0o755); err != nil {
			testenv.Skip(t, "cannot make a cgroup under %s (root is needed): %v", root, err)
		}
		t.Cleanup(func() {
			// The children are gone by now (their own cleanups ran first).
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		})
		dirs = append(dirs, d)
	}
	return dirs
}

// peerProcess is a test child playing a peer role.
type peerProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	done  chan struct{} // closed when it has ended
	err   error         // how it ended, once done
}

// startPeer starts the test binary as a peer of role in the cgroup dir
// (none: the test's own); it ends when the test does.
func startPeer(t *testing.T, role, path, cgroup string, env ...string) *peerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"TASKGUARD_SOCKET_PEER=" + role, "TASKGUARD_SOCKET_PATH=" + path}, env...)...)
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if cgroup != "" {
		dir, err := os.Open(cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Our own pipe, not StdoutPipe: Wait, which may run while the test
	// still reads, must not close it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		testenv.Skip(t, "cannot start a process in cgroup %s (clone3 CLONE_INTO_CGROUP): %v", cgroup, err)
	}
	p := &peerProcess{cmd: cmd, stdin: stdin, out: bufio.NewReader(r), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if s := stderr.String(); s != "" {
			t.Logf("%s peer: %s", role, s)
		}
	})
	return p
}

// TestGroupShare: the socket is open to every container of the task. A
// process in one container (cgroup A) opens more links than the sidecar
// serves in all and holds them: it is served its group's share
// (DefaultMaxConnsPerGroup), the rest are refused, with one warning naming
// its cgroup. A launcher in another container (cgroup B), started then,
// is served, and its audit arrives. (With one cap for all, the hoarder held
// all 64 links and the launcher was refused until the test gave up.)
func TestGroupShare(t *testing.T) {
	cgs := testCgroups(t, 2)
	path := filepath.Join(t.TempDir(), "d.sock")
	audits := make(chan api.Audit, 16)
	log := &refusals{}
	srv := NewServer(func(a api.Audit) { audits <- a }, slog.New(log))
	serveWith(t, srv, path) // before the peers: it ends after them
	const extra = 8
	hoard := startPeer(t, "hoard", path, cgs[0], "TASKGUARD_SOCKET_LINKS="+strconv.Itoa(DefaultMaxConns+extra))
	line, err := hoard.out.ReadString('\n')
	if err != nil {
		t.Fatalf("hoarding peer: %v", err)
	}
	var n int
	if _, err := fmt.Sscanf(line, "served %d", &n); err != nil || n != DefaultMaxConnsPerGroup {
		t.Errorf("hoarding peer in cgroup A: %q, want served %d (its group's share)", line, DefaultMaxConnsPerGroup)
	}
	launcher := startPeer(t, "launcher", path, cgs[1])
	select {
	case a := <-audits:
		if a.Message != "launcher of b" {
			t.Fatalf("audit %q, want the launcher's", a.Message)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the launcher in cgroup B was not served while cgroup A held its links (refused %d)", srv.Refused())
	}
	select {
	case <-launcher.done:
		if launcher.err != nil {
			t.Fatalf("launcher: %v", launcher.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the launcher did not end")
	}
	if got, want := srv.Refused(), int64(DefaultMaxConns+extra-DefaultMaxConnsPerGroup); got != want {
		t.Errorf("refused %d links, want %d (the hoarder's beyond its share)", got, want)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.warns) != 1 || !strings.Contains(log.warns[0], filepath.Base(cgs[0])) {
		t.Errorf("warnings %q, want one naming cgroup %s", log.warns, filepath.Base(cgs[0]))
	}
}

// TestGroupOf: the group is read from the real /proc of real processes.
// Two processes in one cgroup share a group, one in another cgroup has its
// own; a process that ended (its pidfd says so) is counted by its user ID
// even when its PID now reads as another live process's; PID 0 (a peer in
// a PID namespace the sidecar cannot see) is counted by its user ID.
func TestGroupOf(t *testing.T) {
	cgs := testCgroups(t, 2)
	a1 := startPeer(t, "sleep", "", cgs[0])
	a2 := startPeer(t, "sleep", "", cgs[0])
	b := startPeer(t, "sleep", "", cgs[1])
	pidfd := func(p *peerProcess) int {
		fd, err := unix.PidfdOpen(p.cmd.Process.Pid, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	group := func(p *peerProcess, fd int) string {
		return groupOf(unix.Ucred{Pid: int32(p.cmd.Process.Pid), Uid: 0}, fd, "/proc")
	}
	ga1, ga2, gb := group(a1, pidfd(a1)), group(a2, -1), group(b, pidfd(b))
	t.Logf("A: %q, %q; B: %q", ga1, ga2, gb)
	if !strings.HasPrefix(ga1, "cgroup ") || !strings.Contains(ga1, filepath.Base(cgs[0])) {
		t.Errorf("group of a process in cgroup %s: %q", cgs[0], ga1)
	}
	if ga1 != ga2 {
		t.Errorf("two processes of one cgroup: groups %q and %q", ga1, ga2)
	}
	if gb == ga1 || !strings.Contains(gb, filepath.Base(cgs[1])) {
		t.Errorf("a process of another cgroup: group %q (A's %q)", gb, ga1)
	}
	// A process that ended: its pidfd, and its PID now read as b's.
	gone := startPeer(t, "sleep", "", cgs[0])
	gfd := pidfd(gone)
	gone.stdin.Close()
	if <-gone.done; gone.err != nil {
		t.Fatal(gone.err)
	}
	if g := groupOf(unix.Ucred{Pid: int32(b.cmd.Process.Pid), Uid: 1234}, gfd, "/proc"); g != "uid 1234" {
		t.Errorf("a peer that ended, its PID reused: group %q, want uid 1234", g)
	}
	if g := groupOf(unix.Ucred{Pid: 0, Uid: 1000}, -1, "/proc"); g != "uid 1000" {
		t.Errorf("PID 0: group %q, want uid 1000", g)
	}
}

// TestLinkLimits: with the defaults (64 links, 16 a group, 20 kept for
// groups below 2), ten groups each get 2 links whatever the others hold.
// Links are taken in a hostile order: nine groups take all they may, one
// after the other, then a tenth comes.
func TestLinkLimits(t *testing.T) {
	lim := (&Server{}).limits()
	if lim != (linkLimits{total: 64, share: 16, reserve: 20}) {
		t.Fatalf("limits %+v", lim)
	}
	open, total := map[int]int{}, 0
	take := func(g int) bool {
		if lim.refuse(open[g], total) != "" {
			return false
		}
		open[g]++
		total++
		return true
	}
	for g := range 9 {
		for take(g) {
		}
	}
	if total != 56 || open[0] != 16 || open[1] != 16 || open[2] != 12 || open[3] != 2 || open[8] != 2 {
		t.Errorf("nine groups hold %d links (%v), want 56: 16, 16, 12 (44 open), then 2 each", total, open)
	}
	for take(9) {
	}
	if open[9] != 2 || total != 58 {
		t.Errorf("a tenth group: %d links (%d open), want 2 (58)", open[9], total)
	}
	tests := []struct {
		n, total int
		why      string
	}{
		{0, 0, ""},
		{15, 20, ""},
		{16, 20, "this group holds its share of links"},
		{1, 63, ""},
		{1, 64, "as many as the cap are open"},
		{2, 43, ""},
		{2, 44, "the links left are kept for groups that hold fewer than 2"},
	}
	for _, tt := range tests {
		if got := lim.refuse(tt.n, tt.total); got != tt.why {
			t.Errorf("refuse(%d, %d) = %q, want %q", tt.n, tt.total, got, tt.why)
		}
	}
	if l := (&Server{MaxConns: 32, MaxConnsPerGroup: 32}).limits(); l.reserve != 0 {
		t.Errorf("a share as large as the cap keeps %d links, want 0", l.reserve)
	}
}
