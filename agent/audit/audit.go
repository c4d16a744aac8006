package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Sink receives audit records. Send must not keep the slice.
type Sink interface {
	Send(ctx context.Context, audits []api.Audit) error
}

// NewID returns a random record ID; the console stores a record once per ID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Enforcement is what the defender really did about a call its rule
// prevents. Audits word it, so they never claim a refusal that did not happen.
type Enforcement int

// The enforcements.
const (
	// Blocked: the call was refused (it failed with EPERM and did not run).
	Blocked Enforcement = iota
	// Killed: the call could not be refused, so the process was killed
	// before the call ran.
	Killed
	// Ended: the process ended before the answer; the call did not run.
	Ended
	// NotEnforced: the call could be neither refused nor its process
	// killed; it may have run.
	NotEnforced
	// Interrupted: the call was refused, but a signal interrupted it
	// before the refusal reached the process, which did not make it again;
	// it did not run.
	Interrupted
)

// Bounds of the command an exec audit carries. An app may pass up to
// 1 MiB of argv (the supervisor reads 256 strings of 4 KiB); whole, it
// would go twice into every audit of such an exec and fill the launcher's
// queue of audits. The console stores at most 16 KiB of a text field, so a
// message bounded to that keeps the cut mark where the console shows it.
const (
	// MaxExecMessage bounds ExecMessage's message, command included.
	MaxExecMessage = 16 << 10
	// MaxArgv bounds the bytes of the strings CutArgv keeps.
	MaxArgv = 64 << 10
)

// ArgvCutMarker starts the mark that stands for the arguments an audit
// left out (see ArgvCut). CutMarker, which starts the mark of a text field
// the defender cut (CutText), is the same words.
const ArgvCutMarker = CutMarker

// CutMarker starts the note that ends a text the defender cut: "…[cut by
// the defender: ". The console's own cut says "…[truncated by the
// console: " (api.TruncatedMarker).
const CutMarker = "…[cut by the defender: "

// ArgvCut is the mark for argv[kept:], left out of an audit's command:
// "…[cut by the defender: 983040 more bytes in 240 more arguments; command
// sha256 9f86…]". The digest is of the whole command line as
// /proc/PID/cmdline holds it (each string followed by a NUL byte), so two
// commands that differ only in what was left out are told apart: by a
// reader, and by the sidecar, which folds audits of the same message into
// one record with a count (Aggregate).
func ArgvCut(argv []string, kept int) string {
	return NewCommand(argv).mark(kept)
}

func argvMark(n, m int, digest string) string {
	args := "arguments"
	if m == 1 {
		args = "argument"
	}
	return fmt.Sprintf("%s%d more bytes in %d more %s; command sha256 %s]", ArgvCutMarker, n, m, args, digest)
}

// maxArgvMark is the longest mark ArgvCut makes for an argv of up to 1 GiB.
var maxArgvMark = len(argvMark(1<<30, 1<<30, strings.Repeat("0", sha256.Size*2)))

// keptArgs is how many of argv's first strings fit in limit bytes, each
// counted with one byte of separator.
func keptArgs(argv []string, limit int) int {
	kept, size := 0, 0
	for kept < len(argv) && size+len(argv[kept])+1 <= limit {
		size += len(argv[kept]) + 1
		kept++
	}
	return kept
}

// Command is an argv that audits quote, cut when it is long. The digest
// its cut marks carry is computed once, when a cut first needs it: of 1 MiB
// it costs about 1.5 ms, so the audits of one exec share one Command. It
// is safe for concurrent use.
type Command struct {
	argv   []string
	digest func() string
}

// NewCommand returns the Command of argv (not copied: argv must not change).
func NewCommand(argv []string) *Command {
	return &Command{argv: argv, digest: sync.OnceValue(func() string {
		h := sha256.New()
		for _, s := range argv {
			io.WriteString(h, s)
			h.Write([]byte{0})
		}
		return hex.EncodeToString(h.Sum(nil))
	})}
}

// mark is ArgvCut(argv, kept).
func (c *Command) mark(kept int) string {
	rest := 0
	for _, s := range c.argv[kept:] {
		rest += len(s)
	}
	return argvMark(rest, len(c.argv)-kept, c.digest())
}

// Cut returns the argv when its strings hold at most limit bytes (each
// counted with a separator); else a new slice of the first strings that
// fit, whole, and a last string ArgvCut saying what was left out.
func (c *Command) Cut(limit int) []string {
	kept := keptArgs(c.argv, limit)
	if kept == len(c.argv) {
		return c.argv
	}
	return append(c.argv[:kept:kept], c.mark(kept))
}

// Message returns head followed by the argv's strings joined with spaces,
// at most limit bytes long: when the command does not fit, it keeps the
// first strings, whole, that fit with room for an ArgvCut mark, and ends
// with that mark.
func (c *Command) Message(head string, limit int) string {
	argv := c.argv
	// keptArgs counts a separator after the last string too.
	if keptArgs(argv, limit-len(head)+1) < len(argv) {
		kept := keptArgs(argv, limit-len(head)-maxArgvMark)
		argv = append(argv[:kept:kept], c.mark(kept))
	}
	return head + strings.Join(argv, " ")
}

// CutArgv is NewCommand(argv).Cut(limit). The enforcement decision is made
// on the whole argv: this is for audits.
func CutArgv(argv []string, limit int) []string {
	return NewCommand(argv).Cut(limit)
}

// ExecMessage words a process audit:
// "/bin/mkdir launched from /bin/dash and is explicitly blocked in the runtime rule. Full command: mkdir test".
// When the message would be longer than MaxExecMessage, it keeps the
// command's first arguments, whole, that fit, and ends with an ArgvCut mark.
func ExecMessage(path, parent string, argv []string, d policy.Decision) string {
	return ExecMessageAs(path, parent, argv, d, Blocked)
}

// ExecMessageAs is ExecMessage for what really happened (e) to a prevented exec.
func ExecMessageAs(path, parent string, argv []string, d policy.Decision, e Enforcement) string {
	return ExecCommandMessage(path, parent, NewCommand(argv), d, e)
}

// ExecCommandMessage is ExecMessageAs for a Command.
func ExecCommandMessage(path, parent string, cmd *Command, d policy.Decision, e Enforcement) string {
	head := fmt.Sprintf("%s launched from %s and %s. Full command: ", path, parent, verdictPhrase(d, e))
	return cmd.Message(head, MaxExecMessage)
}

// CutText returns s when it holds at most limit bytes; else s cut on a
// UTF-8 boundary and ended with a CutMarker note of how many bytes were
// left out, the whole at most limit bytes: "…[cut by the defender: 4096
// more bytes]". The sidecar cuts every text field of an audit so before it
// spools it, to what the console stores whole, so the console never cuts
// it again and the mark that reaches it says who cut.
func CutText(s string, limit int) string {
	return api.TruncateWithin(s, limit, CutMarker)
}

// DNSMessage words a DNS audit: "DNS resolution of suspicious name yahoo.com".
func DNSMessage(name string) string {
	return "DNS resolution of suspicious name " + name
}

// DNSMessageAs is DNSMessage for what really happened (e) to a prevented query.
func DNSMessageAs(name string, d policy.Decision, e Enforcement) string {
	if !d.Prevent() || e == Blocked {
		return DNSMessage(name)
	}
	return DNSMessage(name) + "; " + outcomeClause(e)
}

// ConnectMessage words an outbound connection audit.
func ConnectMessage(addr string, parent string, d policy.Decision) string {
	return ConnectMessageAs(addr, parent, d, Blocked)
}

// ConnectMessageAs is ConnectMessage for what really happened (e) to a prevented connect.
func ConnectMessageAs(addr string, parent string, d policy.Decision, e Enforcement) string {
	return fmt.Sprintf("Outbound connection to %s from %s %s", addr, parent, verdictPhrase(d, e))
}

// ListenMessage words a listening port audit.
func ListenMessage(port uint16, proto, parent string, d policy.Decision) string {
	return ListenMessageAs(port, proto, parent, d, Blocked)
}

// ListenMessageAs is ListenMessage for what really happened (e) to a prevented listener.
func ListenMessageAs(port uint16, proto, parent string, d policy.Decision, e Enforcement) string {
	return fmt.Sprintf("Listening on %s port %d by %s %s", proto, port, parent, verdictPhrase(d, e))
}

func verdictPhrase(d policy.Decision, e Enforcement) string {
	switch {
	case d.Prevent() && e != Blocked && d.Reason == policy.ReasonDenied:
		return "is explicitly denied in the runtime rule; " + outcomeClause(e)
	case d.Prevent() && e != Blocked:
		return "is not allowed by the runtime rule; " + outcomeClause(e)
	case d.Reason == policy.ReasonDenied && d.Prevent():
		return "is explicitly blocked in the runtime rule"
	case d.Reason == policy.ReasonDenied:
		return "is explicitly denied in the runtime rule (alert only)"
	case d.Prevent():
		return "is not allowed by the runtime rule and is blocked"
	default:
		return "is not allowed by the runtime rule (alert only)"
	}
}

// outcomeClause says what happened instead of a refusal.
func outcomeClause(e Enforcement) string {
	switch e {
	case Killed:
		return "the call could not be refused, so the process was killed before it ran"
	case Ended:
		return "the process ended before the call was refused; the call did not run"
	case Interrupted:
		return "the call was refused, but a signal interrupted it before the answer and it was not made again; it did not run"
	}
	return "the call could be neither refused nor its process killed, so it may have run"
}

// JSONLines writes each audit as one JSON object per line. It is safe for
// concurrent use.
type JSONLines struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSONLines returns a Sink writing to w.
func NewJSONLines(w io.Writer) *JSONLines { return &JSONLines{w: w} }

// Send writes audits, one line each.
func (j *JSONLines) Send(_ context.Context, audits []api.Audit) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	enc := json.NewEncoder(j.w)
	for _, a := range audits {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("write audit: %w", err)
		}
	}
	return nil
}

// Aggregate folds repeats (same kind, effect, rule, container and message)
// into one record with Count and FirstSeen/LastSeen, keeping the first
// record's ID and the order of first appearance.
func Aggregate(audits []api.Audit) []api.Audit {
	type key struct {
		kind                       api.AuditKind
		effect                     policy.Effect
		rule, container, msg, task string
	}
	idx := map[key]int{}
	var out []api.Audit
	for _, a := range audits {
		n := max(a.Count, 1)
		first, last := a.FirstSeen, a.LastSeen
		if first.IsZero() {
			first = a.Time
		}
		if last.IsZero() {
			last = a.Time
		}
		k := key{a.Kind, a.Effect, a.Rule, a.Container, a.Message, a.TaskID}
		if i, ok := idx[k]; ok {
			o := &out[i]
			o.Count += n
			if first.Before(o.FirstSeen) {
				o.FirstSeen = first
			}
			if last.After(o.LastSeen) {
				o.LastSeen = last
			}
			continue
		}
		a.Count, a.FirstSeen, a.LastSeen = n, first, last
		idx[k] = len(out)
		out = append(out, a)
	}
	return out
}

// Now is the clock used for audit times.
var Now = func() time.Time { return time.Now().UTC() }
