//go:build linux && (amd64 || arm64)

package launcher

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/testenv"
)

// TestDetectShellListener: a real bind shell (zsh listening with its
// zsh/net/tcp module); its benign twin is the same shell connecting out.
func TestDetectShellListener(t *testing.T) {
	zsh := testenv.LookPath(t, "zsh", "zsh")
	bothMechanisms(t, func(t *testing.T) {
		for _, eff := range []policy.Effect{policy.EffectPrevent, policy.EffectAlert} {
			t.Run(string(eff), func(t *testing.T) {
				port := strconv.Itoa(int(testenv.FreePort(t)))
				r := launchDetect(t, map[string]policy.Effect{"shell-listener": eff},
					[]string{zsh, "-c", "zmodload zsh/net/tcp && ztcp -l " + port + " && echo listening; echo rc=$?"})
				checkThreat(t, r, "shell-listener", eff, "Shell zsh listens on tcp port "+port+" (bind shell)")
				if eff == policy.EffectPrevent {
					if strings.Contains(r.out, "listening") || !strings.Contains(r.out, "rc=1") {
						t.Errorf("prevent: output %q; want the listen refused", r.out)
					}
				} else if !strings.Contains(r.out, "listening") {
					t.Errorf("alert: output %q; want the shell to listen", r.out)
				}
			})
		}
		t.Run("benign connect", func(t *testing.T) {
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
			port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			r := launchDetect(t, nil, []string{zsh, "-c", "zmodload zsh/net/tcp && ztcp 127.0.0.1 " + port + " && echo connected"})
			if !strings.Contains(r.out, "connected") || len(r.threats("shell-listener")) != 0 {
				t.Errorf("zsh connecting: output %q, audits %+v", r.out, r.audits)
			}
		})
	})
}

// TestDetectPackageManagers runs the real pip, npm and dnf under the
// launcher: installs that run for real without network (pip --no-index,
// npm --offline in an empty project) in alert mode, installs refused in
// prevent mode, and their version queries as benign twins.
func TestDetectPackageManagers(t *testing.T) {
	pip := testenv.LookPath(t, "pip3", "python3-pip")
	npm := testenv.LookPath(t, "npm", "npm")
	dnf := testenv.LookPath(t, "dnf", "dnf")
	project := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, "package.json"), []byte(`{"name":"t","version":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "npm_config_cache=" + filepath.Join(home, "npm"), "PIP_NO_INDEX=1", "PIP_DISABLE_PIP_VERSION_CHECK=1"}
	tests := []struct {
		name   string
		eff    policy.Effect
		script string
		msg    string
		// ran is in the output when the tool really ran.
		ran string
	}{
		// pip really runs and gives up (nothing to install offline; Debian's
		// pip also refuses a system-wide install, PEP 668): exit 1.
		{"pip install alert", policy.EffectAlert, "pip3 install --no-index --find-links " + home + " no-such-package; echo rc=$?", "Package manager pip3 run at runtime: pip3 install --no-index", "rc=1"},
		// Absolute paths when refused: a shell tries each PATH entry after
		// a refused exec, and each try is refused (and audited) again.
		{"pip install prevent", policy.EffectPrevent, pip + " install no-such-package; echo rc=$?", "Package manager pip3 run at runtime: " + pip + " install no-such-package", "rc=126"},
		{"npm install alert", policy.EffectAlert, "cd " + project + " && npm install --offline --no-audit --no-fund --no-update-notifier; echo rc=$?", "Package manager npm run at runtime: npm install --offline", "rc=0"},
		{"npm install prevent", policy.EffectPrevent, npm + " install left-pad; echo rc=$?", "Package manager npm run at runtime: " + npm + " install left-pad", "rc=126"},
		{"dnf alert", policy.EffectAlert, "dnf --version >/dev/null 2>&1; echo rc=$?", "Package manager dnf run at runtime: dnf --version", "rc=0"},
		{"dnf install prevent", policy.EffectPrevent, dnf + " install -y xmrig; echo rc=$?", "Package manager dnf run at runtime: " + dnf + " install -y xmrig", "rc=126"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := launchDetect(t, map[string]policy.Effect{"package-manager": tt.eff, "tempdir-exec": policy.EffectOff, "drift": policy.EffectOff},
				[]string{"/bin/sh", "-c", tt.script}, env...)
			if as := r.threats("package-manager"); len(as) != 1 {
				t.Errorf("%d package-manager audits, want 1: %+v", len(as), as)
			}
			checkThreat(t, r, "package-manager", tt.eff, tt.msg)
			if !strings.Contains(r.out, tt.ran) {
				t.Errorf("output %q lacks %q", r.out, tt.ran)
			}
		})
	}
	t.Run("benign twins", func(t *testing.T) {
		r := launchDetect(t, map[string]policy.Effect{"package-manager": policy.EffectPrevent, "tempdir-exec": policy.EffectOff, "drift": policy.EffectOff},
			[]string{"/bin/sh", "-c", fmt.Sprintf("%s --version && %s --version && cd %s && %s ls; echo rc=$?", pip, npm, project, npm)}, env...)
		if !strings.Contains(r.out, "rc=0") || len(r.threats("package-manager")) != 0 {
			t.Errorf("version queries: output %q, audits %+v", r.out, r.audits)
		}
	})
}
