package api

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// SafeText returns s as text every database column can hold: invalid UTF-8
// becomes U+FFFD and NUL becomes U+2400 (␀), so the replacement is visible.
// It returns s itself when there is nothing to replace.
func SafeText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\u2400")
}

// TruncatedMarker starts the note appended to a text field the console cut.
const TruncatedMarker = "…[truncated by the console: "

// Truncate returns s cut to at most limit bytes, on a UTF-8 boundary, with
// TruncatedMarker and the number of bytes left out appended; s itself when
// it is not longer than limit or limit <= 0.
func Truncate(s string, limit int) string {
	if limit <= 0 || len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMarker + strconv.Itoa(len(s)-cut) + " more bytes]"
}

// TruncateWithin is Truncate for another cutter: it returns s when it is
// not longer than limit, else s cut on a UTF-8 boundary followed by marker
// and "N more bytes]", the whole at most limit bytes (so a reader that
// keeps limit bytes keeps the mark). A limit too small for the mark cuts s
// to limit bytes with none. The console's own cut (Truncate) keeps limit
// bytes of s and adds its mark after them.
func TruncateWithin(s string, limit int, marker string) string {
	if len(s) <= limit {
		return s
	}
	if limit <= 0 {
		return ""
	}
	cut := limit - len(marker) - len(" more bytes]") - len(strconv.Itoa(len(s)))
	note := true
	if cut < 0 {
		cut, note = limit, false
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if !note {
		return s[:cut]
	}
	return s[:cut] + marker + strconv.Itoa(len(s)-cut) + " more bytes]"
}

// Sanitized returns a copy of a (details and lists copied too) whose text
// fields are SafeText and, when limit > 0, Truncate(limit). It names the
// fields it cut, e.g. "message", "waf.path", "process.argv[3]". The ID is
// made safe but never cut: a record's ID is checked, not shortened.
func (a Audit) Sanitized(limit int) (Audit, []string) {
	return a.SanitizedWith(limit, Truncate)
}

// SanitizedWith is Sanitized with another cut: truncate(s, limit) for a
// field longer than limit (the defender's says that it cut, not the
// console).
func (a Audit) SanitizedWith(limit int, truncate func(s string, limit int) string) (Audit, []string) {
	var cut []string
	fix := func(name string, s *string, limit int) {
		v := SafeText(*s)
		if limit > 0 && len(v) > limit {
			v = truncate(v, limit)
			cut = append(cut, name)
		}
		*s = v
	}
	fix("id", &a.ID, 0)
	fix("taskFamily", &a.TaskFamily, limit)
	fix("taskId", &a.TaskID, limit)
	fix("container", &a.Container, limit)
	fix("image", &a.Image, limit)
	k := string(a.Kind)
	fix("kind", &k, limit)
	a.Kind = AuditKind(k)
	fix("rule", &a.Rule, limit)
	fix("detector", &a.Detector, limit)
	fix("technique", &a.Technique, limit)
	fix("severity", &a.Severity, limit)
	fix("message", &a.Message, limit)
	if a.Process != nil {
		p := *a.Process
		fix("process.path", &p.Path, limit)
		fix("process.parent", &p.Parent, limit)
		fix("process.calledAs", &p.CalledAs, limit)
		fix("process.sha256", &p.SHA256, limit)
		p.Tree = append([]ProcessAncestor(nil), p.Tree...)
		for i := range p.Tree {
			t := &p.Tree[i]
			fix("process.tree["+strconv.Itoa(i)+"].path", &t.Path, limit)
			t.Argv = append([]string(nil), t.Argv...)
			for j := range t.Argv {
				fix("process.tree["+strconv.Itoa(i)+"].argv["+strconv.Itoa(j)+"]", &t.Argv[j], limit)
			}
		}
		p.Argv = append([]string(nil), p.Argv...)
		for i := range p.Argv {
			fix("process.argv["+strconv.Itoa(i)+"]", &p.Argv[i], limit)
		}
		a.Process = &p
	}
	if a.Network != nil {
		n := *a.Network
		fix("network.direction", &n.Direction, limit)
		fix("network.domain", &n.Domain, limit)
		fix("network.ip", &n.IP, limit)
		fix("network.protocol", &n.Protocol, limit)
		a.Network = &n
	}
	if a.WAF != nil {
		w := *a.WAF
		fix("waf.eventId", &w.EventID, limit)
		fix("waf.method", &w.Method, limit)
		fix("waf.path", &w.Path, limit)
		fix("waf.source", &w.Source, limit)
		fix("waf.payload", &w.Payload, limit)
		w.Protections = append([]string(nil), w.Protections...)
		for i := range w.Protections {
			fix("waf.protections["+strconv.Itoa(i)+"]", &w.Protections[i], limit)
		}
		w.RuleIDs = append([]int(nil), w.RuleIDs...)
		a.WAF = &w
	}
	return a, cut
}
