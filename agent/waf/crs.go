package waf

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
)

// commonExceptions reads CRS's REQUEST-999-COMMON-EXCEPTIONS-AFTER.conf once.
var commonExceptions = sync.OnceValues(func() (string, error) {
	b, err := fs.ReadFile(crsFS, "@owasp_crs/REQUEST-999-COMMON-EXCEPTIONS-AFTER.conf")
	return string(b), err
})

// defaultRule is one of REQUEST-901's "set tx.X to its default unless the
// setup did" rules.
var defaultRule = regexp.MustCompile(`^SecRule &TX:(\w+) "@eq 0" "id:(\d+),([^"]*)"$`)

// defaultSetvar is the single action such a rule takes.
var defaultSetvar = regexp.MustCompile(`setvar:'tx\.(\w+)=([^']*)'`)

// setupDefaults returns one SecAction that sets, in REQUEST-901's order,
// every default REQUEST-901 would set one rule at a time, except those in
// preset (set by the proxy's own setup), and the IDs of the rules it
// replaces. Loaded before REQUEST-901, it sets the same TX values, and those
// rules, finding their variable set, could never match again: they are
// removed instead of being evaluated on every request.
func setupDefaults(preset ...string) (string, []string, error) {
	b, err := fs.ReadFile(crsFS, "@owasp_crs/REQUEST-901-INITIALIZATION.conf")
	if err != nil {
		return "", nil, fmt.Errorf("read embedded core rule set: %w", err)
	}
	var setvars, ids []string
	for _, rule := range logicalLines(string(b)) {
		m := defaultRule.FindStringSubmatch(rule)
		if m == nil {
			continue
		}
		actions := m[3]
		sv := defaultSetvar.FindAllStringSubmatch(actions, -1)
		if len(sv) != 1 || !strings.EqualFold(sv[0][1], m[1]) || !strings.Contains(actions, "pass") {
			continue
		}
		skip := false
		for _, p := range preset {
			skip = skip || strings.EqualFold(p, m[1])
		}
		if !skip {
			setvars = append(setvars, sv[0][0])
			ids = append(ids, m[2])
		}
	}
	if len(setvars) == 0 {
		return "", nil, fmt.Errorf("no defaults found in REQUEST-901-INITIALIZATION.conf")
	}
	return fmt.Sprintf(`SecAction "id:900991,phase:1,pass,t:none,nolog,%s"`, strings.Join(setvars, ",")), ids, nil
}

// logicalLines joins backslash-continued lines and trims the indentation of
// continuations, so that each SecRule is one line.
func logicalLines(text string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if cur.Len() > 0 {
			l = strings.TrimLeft(l, " \t")
		}
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(strings.TrimSuffix(l, `\`))
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}
