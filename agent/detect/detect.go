// Package detect holds the defender's built-in runtime threat detectors:
// pure decisions on what the supervisor sees at its stops (an exec, a
// connect, a DNS query, a listener, a connection's first payload, a ptrace
// of another process) plus the few /proc reads they need. The account and
// credential file detectors are fed by the launcher's inotify watches.
// Each Detector has an ID (the key of a runtime rule's detectors section),
// a MITRE ATT&CK technique and a default effect (alert); the launcher turns
// findings into audits and, when the rule says prevent, into denials
// through the supervisor's deny path.
//
// The detectors run on the supervisor's thread while the app waits, so an
// exec costs at most one stat (drift) and, for shells and interpreters
// only, two readlinks of /proc/PID/fd (reverse shell); the process tree and
// the file hash are read only for a finding.
package detect

import (
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/console/policy"
)

// MaxCommandMessage bounds a finding's message that quotes a command (an
// app may pass 1 MiB of argv): it is cut as an exec audit's is
// (audit.Command.Message), with room left within audit.MaxExecMessage for
// what the launcher adds (what became of the call, a few hundred bytes at
// most), so the console keeps the mark.
const MaxCommandMessage = audit.MaxExecMessage - 512

// Detector describes one detector.
type Detector struct {
	// ID is the key in a runtime rule's detectors section and the audits' detector field.
	ID string
	// Technique is the MITRE ATT&CK technique the detector stands for.
	Technique string
	// Title names the detector for people.
	Title string
	// Default is the effect when the rule does not name the detector.
	Default policy.Effect
}

// The detectors, in policy.Detectors order.
var (
	Fileless       = Detector{"fileless-exec", "T1620", "Fileless execution (memfd, /proc/PID/fd)", policy.EffectAlert}
	TempDir        = Detector{"tempdir-exec", "T1059", "Execution from a temporary directory", policy.EffectAlert}
	Drift          = Detector{"drift", "T1105", "Executable written after the container started", policy.EffectAlert}
	ReverseShell   = Detector{"reverse-shell", "T1059.004", "Reverse shell", policy.EffectAlert}
	Miner          = Detector{"crypto-miner", "T1496", "Crypto miner", policy.EffectAlert}
	NetcatListener = Detector{"netcat-listener", "T1095", "Netcat-like listener", policy.EffectAlert}
	ShellListener  = Detector{"shell-listener", "T1059.004", "Shell listening (bind shell)", policy.EffectAlert}
	NetworkScanner = Detector{"network-scanner", "T1046", "Network scanner", policy.EffectAlert}
	PackageManager = Detector{"package-manager", "T1072", "Package manager run at runtime", policy.EffectAlert}
	Injection      = Detector{"process-injection", "T1055.008", "Ptrace or memory access of another process", policy.EffectAlert}
	AccountFile    = Detector{"account-file-write", "T1098", "Write to an account file (/etc/passwd, shadow, group, sudoers)", policy.EffectAlert}
	CredentialFile = Detector{"credential-file-access", "T1552.001", "Cloud or cluster credential file opened", policy.EffectAlert}
)

// All lists every detector.
var All = []Detector{Fileless, TempDir, Drift, ReverseShell, Miner, NetcatListener, ShellListener, NetworkScanner, PackageManager, Injection, AccountFile, CredentialFile}

// WatchOnly are the detectors fed by file watches (inotify), which see an
// access after it happened: they alert, and prevent alerts too.
var WatchOnly = []Detector{AccountFile, CredentialFile}

// Finding is one detector's verdict on one event.
type Finding struct {
	Detector Detector
	// Message is the audit's sentence, without the enforcement words.
	Message string
	// File is the program file the finding is about (for its hash), "" when none.
	File string
}

// Exec is what the detectors need of an exec stop.
type Exec struct {
	PID int
	// Path is the program as called; Resolved the file the kernel runs.
	Path, Resolved string
	// Args reads the new program's argv on demand (nil: none).
	Args func() []string
	// Command, when set, returns the audit.Command of Args() that the
	// caller's other audits of this exec share (a cut command's digest is
	// then computed once); nil: Exec makes its own.
	Command func() *audit.Command
	// Ctime is the status change time of Resolved when the caller already
	// read it (the supervisor's lookup opened the file); zero: Exec reads it.
	Ctime time.Time
}

// Engine runs the detectors. Start is when the container started (the
// launcher's start, on the kernel's file-time clock); Proc is the /proc
// directory ("/proc" when empty).
type Engine struct {
	Start time.Time
	Proc  string

	mu     sync.Mutex
	hashes map[hashKey]string
}

func (en *Engine) proc() string {
	if en.Proc == "" {
		return "/proc"
	}
	return en.Proc
}

func baseOf(names ...string) []string {
	var out []string
	for _, n := range names {
		if n == "" {
			continue
		}
		b := path.Base(n)
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// memfdName reports whether p names an anonymous memory file (memfd) or a
// file through a /proc fd link.
func fileless(p string) bool {
	if strings.HasPrefix(p, "/memfd:") {
		return true
	}
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return false
	}
	_, fd, ok := strings.Cut(rest, "/")
	return ok && strings.HasPrefix(fd, "fd/")
}

// tempDirs are world-writable places an attacker drops a payload in.
var tempDirs = []string{"/tmp/", "/var/tmp/", "/dev/shm/"}

func inTempDir(p string) (string, bool) {
	for _, d := range tempDirs {
		if strings.HasPrefix(p, d) {
			return strings.TrimSuffix(d, "/"), true
		}
	}
	return "", false
}

// Exec runs the exec detectors.
func (en *Engine) Exec(e Exec) []Finding {
	var out []Finding
	real := e.Resolved
	if real == "" {
		real = e.Path
	}
	switch {
	case fileless(e.Path) || fileless(real):
		out = append(out, Finding{Detector: Fileless, Message: "Fileless execution: " + quoteName(e.Path, real) + " runs from memory or a /proc fd link, not from a file of the image"})
	default:
		if d, ok := inTempDir(real); ok {
			out = append(out, Finding{Detector: TempDir, Message: "Execution from temporary directory " + d + ": " + quoteName(e.Path, real), File: real})
		} else if d, ok := inTempDir(e.Path); ok {
			out = append(out, Finding{Detector: TempDir, Message: "Execution from temporary directory " + d + ": " + quoteName(e.Path, real), File: real})
		}
		if !en.Start.IsZero() {
			ct, ok := e.Ctime, !e.Ctime.IsZero()
			if !ok {
				ct, ok = en.ctime(e.PID, real)
			}
			if ok && ct.After(en.Start) {
				out = append(out, Finding{Detector: Drift, Message: "Drift: " + quoteName(e.Path, real) + " was written or changed after the container started (" + ct.UTC().Format(time.RFC3339Nano) + ")", File: real})
			}
		}
	}
	names := baseOf(e.Path, real)
	var argv []string
	args := func() []string {
		if argv == nil && e.Args != nil {
			argv = e.Args()
			if argv == nil {
				argv = []string{}
			}
		}
		return argv
	}
	command := e.Command
	if command == nil {
		command = sync.OnceValue(func() *audit.Command { return audit.NewCommand(args()) })
	}
	if n, ok := anyIn(names, minerNames); ok {
		out = append(out, Finding{Detector: Miner, Message: "Crypto miner " + n + " started: " + quoteName(e.Path, real), File: real})
	}
	if n, ok := anyIn(names, scanners); ok {
		out = append(out, Finding{Detector: NetworkScanner, Message: "Network scanner " + n + " started: " + quoteName(e.Path, real), File: real})
	}
	if n, ok := packageManager(names, args); ok {
		out = append(out, Finding{Detector: PackageManager, Message: command().Message("Package manager "+n+" run at runtime: ", MaxCommandMessage), File: real})
	}
	if n, ok := anyIn(names, netcats); ok && netcatListens(args()) {
		out = append(out, Finding{Detector: NetcatListener, Message: command().Message(n+" started as a listener: ", MaxCommandMessage), File: real})
	}
	if n, ok := shellOrInterpreter(names); ok {
		if fd, sock := en.socketStdio(e.PID); sock != "" {
			out = append(out, Finding{Detector: ReverseShell, Message: "Reverse shell: " + n + " started with its " + fd + " on network socket " + sock, File: real})
		}
	}
	return out
}

func quoteName(called, real string) string {
	if called == real || called == "" {
		return real
	}
	return real + " (called as " + called + ")"
}

func anyIn(names []string, set nameSet) (string, bool) {
	for _, n := range names {
		if set.match(n) {
			return n, true
		}
	}
	return "", false
}

// nameSet is a list of program name patterns (path.Match syntax), compiled
// once: the plain names in a map, each glob with the literal prefix that
// every name it matches starts with. An exec checks ~80 patterns; a map
// look-up and a few prefix tests replace as many pattern parses.
type nameSet struct {
	exact map[string]bool
	globs []glob
}

type glob struct{ pattern, prefix string }

func names(patterns ...string) nameSet {
	s := nameSet{exact: map[string]bool{}}
	for _, p := range patterns {
		i := strings.IndexAny(p, `*?[\`)
		if i < 0 {
			s.exact[p] = true
			continue
		}
		s.globs = append(s.globs, glob{pattern: p, prefix: p[:i]})
	}
	return s
}

// match reports whether n matches one of the patterns, as path.Match
// decides it.
func (s nameSet) match(n string) bool {
	if s.exact[n] {
		return true
	}
	for _, g := range s.globs {
		if !strings.HasPrefix(n, g.prefix) {
			continue
		}
		if ok, _ := path.Match(g.pattern, n); ok {
			return true
		}
	}
	return false
}

var (
	minerNames = names("xmrig*", "xmr-stak*", "minerd", "cpuminer*", "ethminer", "t-rex", "lolminer", "nbminer", "gminer", "phoenixminer", "nanominer", "teamredminer", "bminer", "ccminer", "cgminer", "bfgminer", "srbminer*", "xmr-miner", "kinsing", "kdevtmpfsi")
	scanners   = names("nmap", "masscan", "zmap", "rustscan", "naabu")
	netcats    = names("nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat")
	shells     = names("sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish")
	interps    = names("python", "python2*", "python3*", "perl", "perl5*", "ruby", "ruby*", "php", "php*", "node", "nodejs", "lua", "lua5*", "tclsh", "awk", "gawk", "busybox")
	// always are package managers whatever their arguments; installers run
	// package managers only with an install verb.
	pkgAlways  = names("apt", "apt-get", "aptitude", "dpkg", "apk", "dnf", "yum", "microdnf", "rpm", "zypper", "pacman")
	installers = names("pip", "pip2", "pip3", "pip3.*", "npm", "yarn", "pnpm", "gem", "cargo", "go", "composer")
)

func packageManager(names []string, args func() []string) (string, bool) {
	if n, ok := anyIn(names, pkgAlways); ok {
		return n, true
	}
	if n, ok := anyIn(names, installers); ok {
		for _, a := range args()[min(1, len(args())):] {
			switch a {
			case "install", "i", "add", "get":
				return n, true
			}
		}
	}
	return "", false
}

// netcatListens reports whether a netcat-like command line listens.
func netcatListens(argv []string) bool {
	for _, a := range argv[min(1, len(argv)):] {
		al := strings.ToLower(a)
		if strings.HasPrefix(al, "tcp-listen") || strings.HasPrefix(al, "udp-listen") || strings.HasPrefix(al, "tcp4-listen") || strings.HasPrefix(al, "tcp6-listen") {
			return true
		}
		if a == "--listen" || (strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "l")) {
			return true
		}
	}
	return false
}

func shellOrInterpreter(names []string) (string, bool) {
	if n, ok := anyIn(names, shells); ok {
		return n, true
	}
	return anyIn(names, interps)
}

// Connect runs the connect detectors.
func (en *Engine) Connect(addr netip.AddrPort, exe string) []Finding {
	if slices.Contains(poolPorts, addr.Port()) {
		return []Finding{{Detector: Miner, Message: "Connection to mining pool port " + addr.String() + " by " + exe + " (a Stratum port)"}}
	}
	return nil
}

// poolPorts are the well-known Stratum ports of mining pools.
// Common service ports (8080, 8888, 9999) are left out: they would alert on
// ordinary traffic.
var poolPorts = []uint16{3333, 3334, 3357, 4444, 5555, 5588, 7777, 10128, 10343, 14433, 14444, 45560, 45700}

// poolDomains are well-known mining pools; a name matches the domain and its subdomains.
var poolDomains = []string{
	"nanopool.org", "supportxmr.com", "moneroocean.stream", "2miners.com", "minexmr.com", "hashvault.pro",
	"f2pool.com", "ethermine.org", "nicehash.com", "c3pool.com", "herominers.com", "xmrpool.eu",
	"dwarfpool.com", "minergate.com", "unmineable.com", "viabtc.com", "antpool.com", "slushpool.com",
	"poolin.com", "mining-dutch.nl", "zpool.ca", "prohashing.com", "miningpoolhub.com", "kryptex.network",
}

// DNS runs the DNS detectors on one queried name.
func (en *Engine) DNS(name, exe string) []Finding {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	for _, d := range poolDomains {
		if n == d || strings.HasSuffix(n, "."+d) {
			return []Finding{{Detector: Miner, Message: "DNS resolution of mining pool " + n + " by " + exe}}
		}
	}
	return nil
}

// Listen runs the listener detectors for process pid; exe is the listener
// as called and real the file that runs. For a multi-call binary (busybox)
// the applet is its argv[0], read from /proc.
func (en *Engine) Listen(pid int, port uint16, protocol, exe, real string) []Finding {
	names := baseOf(exe, real)
	if slices.Contains(names, "busybox") {
		names = append(names, baseOf(en.argv0(pid))...)
	}
	what := protocol + " port " + itoa(int(port))
	if n, ok := anyIn(names, netcats); ok {
		return []Finding{{Detector: NetcatListener, Message: n + " listens on " + what, File: real}}
	}
	if n, ok := anyIn(names, shells); ok {
		return []Finding{{Detector: ShellListener, Message: "Shell " + n + " listens on " + what + " (bind shell)", File: real}}
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
