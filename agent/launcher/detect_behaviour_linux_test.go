//go:build linux && (amd64 || arm64)

package launcher

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/console/policy"
)

// injectClient attaches to process target with PTRACE_SEIZE, or reads 16
// bytes of its stack with process_vm_readv ("self" reads its own).
func injectClient(target, how string) int {
	runtime.LockOSThread()
	pid, err := strconv.Atoi(target)
	if err != nil {
		pid = os.Getpid()
	}
	switch how {
	case "seize":
		if err := unix.PtraceSeize(pid); err != nil {
			fmt.Println("ptrace failed:", err)
			return 3
		}
		fmt.Println("attached")
		return 0
	default:
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			fmt.Println("maps:", err)
			return 2
		}
		var lo uint64
		for line := range strings.SplitSeq(string(maps), "\n") {
			if strings.HasSuffix(line, "[stack]") {
				lo, _ = strconv.ParseUint(line[:strings.IndexByte(line, '-')], 16, 64)
			}
		}
		b := make([]byte, 16)
		_, err = unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &b[0], Len: 16}}, []unix.RemoteIovec{{Base: uintptr(lo), Len: 16}}, 0)
		if err != nil {
			fmt.Println("process_vm_readv failed:", err)
			return 3
		}
		fmt.Println("read")
		return 0
	}
}

// TestDetectProcessInjection: a real ptrace attach to and a real memory read
// of a process outside the app; reading one's own memory is the benign twin.
func TestDetectProcessInjection(t *testing.T) {
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	target := strconv.Itoa(sleep.Process.Pid)
	h := self(t)
	bothMechanisms(t, func(t *testing.T) {
		for _, tc := range []struct{ how, call, ran string }{
			{"seize", "ptrace(PTRACE_SEIZE)", "attached"},
			{"read", "process_vm_readv", "read"},
		} {
			for _, eff := range []policy.Effect{policy.EffectPrevent, policy.EffectAlert} {
				t.Run(tc.how+"/"+string(eff), func(t *testing.T) {
					r := launchDetect(t, map[string]policy.Effect{"process-injection": eff}, []string{h, target, tc.how}, helperEnv("inject"))
					a := checkThreat(t, r, "process-injection", eff, "called "+tc.call+" on process "+target+" (")
					if a.Technique != "T1055.008" {
						t.Errorf("technique %q", a.Technique)
					}
					if eff == policy.EffectPrevent {
						if r.code != 3 || !strings.Contains(r.out, "operation not permitted") {
							t.Errorf("prevent: exit %d, output %q; want the call refused with EPERM", r.code, r.out)
						}
					} else if r.code != 0 || !strings.Contains(r.out, tc.ran) {
						t.Errorf("alert: exit %d, output %q; want the call to succeed", r.code, r.out)
					}
				})
			}
		}
		t.Run("benign own memory", func(t *testing.T) {
			r := launchDetect(t, map[string]policy.Effect{"process-injection": policy.EffectPrevent}, []string{h, "self", "read"}, helperEnv("inject"))
			if r.code != 0 || !strings.Contains(r.out, "read") || len(r.audits) != 0 {
				t.Errorf("own memory: exit %d, output %q, audits %+v", r.code, r.out, r.audits)
			}
		})
	})
}

// fileRoot makes a root with /etc account files and a home with AWS
// credentials, and points the launcher's file watches at it.
func fileRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc/sudoers.d", "home/app/.aws"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", "etc/shadow": "root:*:19000:0:99999:7:::\n",
		"etc/sudoers": "root ALL=(ALL) ALL\n", "etc/hostname": "task\n", "home/app/.aws/credentials": "[default]\naws_access_key_id = AKIAEXAMPLE\n",
		"home/app/notes.txt": "hello\n",
	}
	for f, c := range files {
		if err := os.WriteFile(filepath.Join(root, f), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := watchRoot
	watchRoot = root
	t.Cleanup(func() { watchRoot = old })
	return root
}

// TestDetectAccountFileWrite: real writes to /etc/passwd (append, rename
// over it), /etc/shadow and a new /etc/sudoers.d file raise one audit each;
// reading them and writing /etc/hostname raise none.
func TestDetectAccountFileWrite(t *testing.T) {
	root := fileRoot(t)
	etc := filepath.Join(root, "etc")
	tests := []struct {
		name, script, msg string
	}{
		{"append passwd", "echo 'evil:x:0:0::/root:/bin/sh' >> " + etc + "/passwd", "Account file /etc/passwd written"},
		{"rename over passwd", fmt.Sprintf("cp %[1]s/passwd %[1]s/passwd+ && echo 'evil:x:0:0::/:/bin/sh' >> %[1]s/passwd+ && mv %[1]s/passwd+ %[1]s/passwd", etc), "Account file /etc/passwd replaced (a file renamed over it)"},
		{"open shadow for writing", ": >> " + etc + "/shadow", "Account file /etc/shadow opened for writing"},
		{"sudoers.d", "echo 'app ALL=(ALL) NOPASSWD: ALL' > " + etc + "/sudoers.d/app", "Account file /etc/sudoers.d/app created"},
	}
	for _, tt := range tests {
		for _, eff := range []policy.Effect{policy.EffectAlert, policy.EffectPrevent} {
			t.Run(tt.name+"/"+string(eff), func(t *testing.T) {
				_ = os.Remove(filepath.Join(etc, "sudoers.d", "app"))
				r := launchDetect(t, map[string]policy.Effect{"account-file-write": eff}, []string{"/bin/sh", "-c", tt.script + "; echo rc=$?"})
				as := r.threats("account-file-write")
				if len(as) != 1 {
					t.Fatalf("%d account-file-write audits, want 1: %+v; output %q", len(as), r.audits, r.out)
				}
				a := as[0]
				if !strings.Contains(r.out, "rc=0") || !strings.HasPrefix(a.Message, tt.msg+" by ") || a.Effect != policy.EffectAlert || a.Technique != "T1098" || a.Rule != "detect-rule" {
					t.Errorf("audit %+v; output %q", a, r.out)
				}
				if eff == policy.EffectPrevent && !strings.HasSuffix(a.Message, "cannot prevent it)") {
					t.Errorf("prevent: message %q does not say the write was not prevented", a.Message)
				}
			})
		}
	}
	t.Run("benign", func(t *testing.T) {
		r := launchDetect(t, nil, []string{"/bin/sh", "-c", fmt.Sprintf("cat %[1]s/passwd %[1]s/shadow >/dev/null && grep -q app %[1]s/passwd && echo other > %[1]s/hostname && ls %[1]s/sudoers.d; echo rc=$?", etc)})
		if !strings.Contains(r.out, "rc=0") || len(r.audits) != 0 {
			t.Errorf("reads and another file: output %q, audits %+v", r.out, r.audits)
		}
	})
}

// TestDetectCredentialFileAccess: a real read of ~/.aws/credentials raises
// one audit, which names the process while it holds the file open; listing
// the directory and reading another file of the home raise none.
func TestDetectCredentialFileAccess(t *testing.T) {
	root := fileRoot(t)
	creds := filepath.Join(root, "home/app/.aws/credentials")
	t.Run("read", func(t *testing.T) {
		r := launchDetect(t, map[string]policy.Effect{"credential-file-access": policy.EffectAlert}, []string{"/bin/sh", "-c", "cat " + creds + " >/dev/null; echo rc=$?"}, "HOME=/home/app")
		as := r.threats("credential-file-access")
		if len(as) != 1 || !strings.HasPrefix(as[0].Message, "Credential file /home/app/.aws/credentials opened by ") || as[0].Technique != "T1552.001" || !strings.Contains(r.out, "rc=0") {
			t.Errorf("audits %+v, output %q", r.audits, r.out)
		}
	})
	t.Run("held open", func(t *testing.T) {
		// The reader keeps the file open until the audit is out: it names it.
		r := launchDetect(t, nil, []string{"/bin/sh", "-c", "exec 3<" + creds + "; i=0; while [ $i -lt 200 ]; do i=$((i+1)); ls /proc/self/fd >/dev/null; done; echo rc=$?"}, "HOME=/home/app")
		as := r.threats("credential-file-access")
		if len(as) != 1 {
			t.Fatalf("audits %+v", r.audits)
		}
		if as[0].Process == nil || as[0].Process.PID == 0 || !strings.Contains(as[0].Message, "by process "+strconv.Itoa(as[0].Process.PID)) {
			t.Errorf("the reader, which holds the file open, was not named: %+v", as[0])
		}
	})
	t.Run("benign", func(t *testing.T) {
		r := launchDetect(t, nil, []string{"/bin/sh", "-c", fmt.Sprintf("ls -l %s/home/app/.aws >/dev/null && cat %s/home/app/notes.txt >/dev/null; echo rc=$?", root, root)}, "HOME=/home/app")
		if !strings.Contains(r.out, "rc=0") || len(r.audits) != 0 {
			t.Errorf("output %q, audits %+v", r.out, r.audits)
		}
	})
	t.Run("off", func(t *testing.T) {
		r := launchDetect(t, map[string]policy.Effect{"credential-file-access": policy.EffectOff}, []string{"/bin/sh", "-c", "cat " + creds + " >/dev/null"}, "HOME=/home/app")
		if len(r.threats("credential-file-access")) != 0 {
			t.Errorf("off: audits %+v", r.audits)
		}
	})
}
