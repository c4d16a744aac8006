package detect

import (
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/console/policy"
)

func TestIDsMatchPolicy(t *testing.T) {
	var ids []string
	for _, d := range All {
		ids = append(ids, d.ID)
		if d.Technique == "" || d.Title == "" || d.Default != policy.EffectAlert {
			t.Errorf("detector %+v lacks a technique, a title or the alert default", d)
		}
	}
	if !slices.Equal(ids, policy.Detectors) {
		t.Errorf("detectors %v, policy.Detectors %v", ids, policy.Detectors)
	}
}

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Detector.ID)
	}
	return out
}

func TestExecNames(t *testing.T) {
	en := &Engine{Proc: t.TempDir()} // no /proc: no drift, no sockets
	tests := []struct {
		path, resolved string
		argv           []string
		want           []string
	}{
		{"/memfd:x (deleted)", "", nil, []string{"fileless-exec"}},
		{"/proc/self/fd/3", "", nil, []string{"fileless-exec"}},
		{"/proc/1234/fd/7", "/memfd:payload (deleted)", nil, []string{"fileless-exec"}},
		{"/tmp/x", "/tmp/x", nil, []string{"tempdir-exec"}},
		{"/var/tmp/a/b", "/var/tmp/a/b", nil, []string{"tempdir-exec"}},
		{"/dev/shm/x", "/dev/shm/x", nil, []string{"tempdir-exec"}},
		{"/tmpfoo/x", "/tmpfoo/x", nil, nil},
		{"/usr/local/bin/xmrig", "/usr/local/bin/xmrig", nil, []string{"crypto-miner"}},
		{"/opt/t-rex", "/opt/t-rex", nil, []string{"crypto-miner"}},
		{"/usr/bin/nmap", "/usr/bin/nmap", nil, []string{"network-scanner"}},
		{"/usr/bin/apk", "/sbin/apk", []string{"apk", "add", "curl"}, []string{"package-manager"}},
		{"/usr/bin/pip3", "/usr/bin/pip3", []string{"pip3", "install", "x"}, []string{"package-manager"}},
		{"/usr/bin/pip3", "/usr/bin/pip3", []string{"pip3", "list"}, nil},
		{"/usr/bin/npm", "/usr/bin/npm", []string{"npm", "start"}, nil},
		{"/usr/bin/ncat", "/usr/bin/ncat", []string{"ncat", "-lvp", "4444"}, []string{"netcat-listener"}},
		{"/usr/bin/socat", "/usr/bin/socat", []string{"socat", "TCP-LISTEN:80", "-"}, []string{"netcat-listener"}},
		{"/usr/bin/nc", "/usr/bin/nc", []string{"nc", "example.org", "80"}, nil},
		{"/bin/ls", "/usr/bin/ls", []string{"ls"}, nil},
	}
	for _, tt := range tests {
		got := ids(en.Exec(Exec{PID: 1, Path: tt.path, Resolved: tt.resolved, Args: func() []string { return tt.argv }}))
		if !slices.Equal(got, tt.want) {
			t.Errorf("Exec(%s, %s, %v) = %v, want %v", tt.path, tt.resolved, tt.argv, got, tt.want)
		}
	}
}

// TestCommandFindingsCut: the package manager and netcat listener findings
// quote the command. With the longest argv the supervisor reads (256
// strings of 4 KiB, 1 MiB) the message is cut as an exec audit's is: its
// first arguments, whole, then the mark, within MaxCommandMessage. A short
// command is quoted as it was.
func TestCommandFindingsCut(t *testing.T) {
	en := &Engine{Proc: t.TempDir()}
	long := func(first ...string) []string {
		argv := first
		for i := len(first); i < 256; i++ {
			argv = append(argv, strings.Repeat(fmt.Sprint(i%10), 4095))
		}
		return argv
	}
	tests := []struct {
		name, path, head string
		argv             []string
	}{
		{"package manager", "/usr/bin/pip3", "Package manager pip3 run at runtime: ", long("pip3", "install")},
		{"netcat listener", "/usr/bin/ncat", "ncat started as a listener: ", long("ncat", "-lvp")},
		{"package manager, short", "/usr/bin/pip3", "Package manager pip3 run at runtime: ", []string{"pip3", "install", "x"}},
		{"netcat listener, short", "/usr/bin/ncat", "ncat started as a listener: ", []string{"ncat", "-lvp", "4444"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := en.Exec(Exec{PID: 1, Path: tt.path, Resolved: tt.path, Args: func() []string { return tt.argv }})
			if len(fs) != 1 {
				t.Fatalf("%d findings, want 1", len(fs))
			}
			msg := fs[0].Message
			if len(tt.argv) < 10 {
				if want := tt.head + strings.Join(tt.argv, " "); msg != want {
					t.Errorf("message %q, want %q", msg, want)
				}
				return
			}
			// The head, "pip3 install" (or "ncat -lvp") and 3 strings of
			// 4,095 bytes, then the mark for the 251 others.
			want := tt.head + strings.Join(tt.argv[:5], " ") + " " + audit.ArgvCut(tt.argv, 5)
			if msg != want || len(msg) > MaxCommandMessage {
				t.Errorf("message of %d bytes ending %q, want %d (at most %d) ending %q", len(msg), msg[max(0, len(msg)-100):], len(want), MaxCommandMessage, want[len(want)-100:])
			}
			if !strings.Contains(msg, audit.ArgvCutMarker+"1027845 more bytes in 251 more arguments; command sha256 ") {
				t.Errorf("message ends %q: no mark of what was left out", msg[max(0, len(msg)-150):])
			}
		})
	}
}

func TestNetworkDetectors(t *testing.T) {
	en := &Engine{}
	if got := ids(en.Connect(netip.MustParseAddrPort("10.0.0.1:3333"), "/x")); !slices.Equal(got, []string{"crypto-miner"}) {
		t.Errorf("connect 3333 = %v", got)
	}
	if got := en.Connect(netip.MustParseAddrPort("10.0.0.1:443"), "/x"); got != nil {
		t.Errorf("connect 443 = %v", got)
	}
	for name, want := range map[string]bool{"xmr.nanopool.org.": true, "GULF.MONEROOCEAN.STREAM": true, "pool.minexmr.com": true, "supportxmr.com": true, "notnanopool.org": false, "example.org": false} {
		if got := len(en.DNS(name, "/x")) == 1; got != want {
			t.Errorf("DNS(%s) found %v, want %v", name, got, want)
		}
	}
	if got := ids(en.Listen(1, 4444, "tcp", "/bin/nc", "/usr/bin/busybox")); !slices.Equal(got, []string{"netcat-listener"}) {
		t.Errorf("nc listen = %v", got)
	}
	if got := ids(en.Listen(1, 4444, "tcp", "/bin/sh", "/usr/bin/dash")); !slices.Equal(got, []string{"shell-listener"}) {
		t.Errorf("sh listen = %v", got)
	}
	if got := en.Listen(1, 8080, "tcp", "/usr/bin/python3", "/usr/bin/python3.11"); got != nil {
		t.Errorf("python listen = %v", got)
	}
}

func TestHexAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:115C":                         "127.0.0.1:4444",
		"00000000000000000000000001000000:0050": "::1:80",
		"zz:1":                                  "zz:1",
	} {
		if got := hexAddr(in); got != want {
			t.Errorf("hexAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestHashCachedByIdentity(t *testing.T) {
	en := &Engine{}
	dir := t.TempDir()
	f := filepath.Join(dir, "x")
	if err := os.WriteFile(f, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	if got := en.Hash(pid, f); got != "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed" {
		t.Fatalf("Hash = %s", got)
	}
	if err := os.WriteFile(f, []byte("two!"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := en.Hash(pid, f); got != "a97b629a5b1da759586c3353a9bc284bf673970d8eca56e11e556b715c329614" {
		t.Fatalf("Hash after a change = %s: the cache served a stale sum", got)
	}
	if got := en.Hash(pid, "/memfd:x (deleted)"); got != "" {
		t.Errorf("Hash of a memfd name = %q", got)
	}
}

// TestExecDriftGivenCtime checks the drift detector on a ctime the caller
// read already (the supervisor's lookup): later than the start is drift,
// earlier is not, and no /proc read is needed for either.
func TestExecDriftGivenCtime(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	en := &Engine{Start: start, Proc: t.TempDir()} // no /proc: only the given ctime can tell
	for _, tt := range []struct {
		ctime time.Time
		want  []string
	}{
		{start.Add(time.Second), []string{"drift"}},
		{start.Add(-time.Second), nil},
		{time.Time{}, nil}, // not given, and no /proc to read it from
	} {
		got := ids(en.Exec(Exec{PID: 1, Path: "/app/x", Resolved: "/app/x", Ctime: tt.ctime}))
		if !slices.Equal(got, tt.want) {
			t.Errorf("ctime %v: findings %v, want %v", tt.ctime, got, tt.want)
		}
	}
}

// TestNameSetMatchesPathMatch checks the compiled name sets against
// path.Match, pattern by pattern, on names that hit and miss each.
func TestNameSetMatchesPathMatch(t *testing.T) {
	raw := []string{"xmrig*", "minerd", "python3*", "pip3.*", "php*", "lua5*", "sh", "[ab]c", `a\*b`, "x?z"}
	set := names(raw...)
	for _, n := range []string{"xmrig", "xmrig-6.21", "xmri", "minerd", "minerdx", "python3", "python3.11", "python", "pip3.12", "pip3", "php", "php8.2",
		"lua5.4", "lua", "sh", "shx", "ac", "bc", "cc", "a*b", "axb", "xyz", "xz", "", "a/b"} {
		want := false
		for _, p := range raw {
			if ok, _ := path.Match(p, n); ok {
				want = true
			}
		}
		if got := set.match(n); got != want {
			t.Errorf("match(%q) = %v, path.Match says %v", n, got, want)
		}
	}
}
