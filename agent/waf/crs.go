package waf

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/taskguard/taskguard/agent/waf/internal/bodyproc"
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

// setupDefaults returns, in REQUEST-901's order, the setvar of every
// default REQUEST-901 would set one rule at a time, except those in preset
// (set by the proxy's own setup), and the IDs of the rules it replaces.
// Set before REQUEST-901, those rules, finding their variable set, could
// never match again: they are removed instead of being evaluated on every
// request.
func setupDefaults(preset ...string) ([]string, []string, error) {
	b, err := fs.ReadFile(crsFS, "@owasp_crs/REQUEST-901-INITIALIZATION.conf")
	if err != nil {
		return nil, nil, fmt.Errorf("read embedded core rule set: %w", err)
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
			setvars = append(setvars, "tx."+sv[0][1]+"="+sv[0][2])
			ids = append(ids, m[2])
		}
	}
	if len(setvars) == 0 {
		return nil, nil, fmt.Errorf("no defaults found in REQUEST-901-INITIALIZATION.conf")
	}
	return setvars, ids, nil
}

// constantSetvars returns the setvars of the SecAction id in file, which
// must all be constants: "tx.name=value".
func constantSetvars(file, id string) ([]string, error) {
	b, err := fs.ReadFile(crsFS, file)
	if err != nil {
		return nil, fmt.Errorf("read embedded core rule set: %w", err)
	}
	for _, rule := range logicalLines(string(b)) {
		if !strings.HasPrefix(rule, "SecAction") || !strings.Contains(rule, "id:"+id+",") {
			continue
		}
		var out []string
		for _, m := range anySetvar.FindAllStringSubmatch(rule, -1) {
			if strings.Contains(m[1], "%{") || !strings.HasPrefix(strings.ToLower(m[1]), "tx.") {
				return nil, fmt.Errorf("%s: rule %s: setvar %q is not a constant", file, id, m[1])
			}
			out = append(out, m[1])
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: rule %s sets nothing", file, id)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no SecAction %s", file, id)
}

// setupHolds checks that the setup (ordered "tx.name=value") sets every
// name of want, to want's value unless that is empty.
func setupHolds(setup []string, want map[string]string) error {
	got := map[string]string{}
	for _, sv := range setup {
		k, v, _ := strings.Cut(sv, "=")
		got[strings.ToLower(k)] = v
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || (v != "" && g != v) {
			return fmt.Errorf("setup sets %s=%q, the rules it replaces need %q", k, g, v)
		}
	}
	return nil
}

// anySetvar is one setvar action, quoted or not.
var anySetvar = regexp.MustCompile(`setvar:'?([^',"]+)'?`)

// setupAction sets the constant TX values of the proxy's setup in one step
// instead of one setvar action at a time (about fifty per request). Its
// argument carries the values themselves (setupArgument): a registry of
// setups by key would keep every setup a sidecar has seen, one more with
// each policy change.
type setupAction struct{ vars []setupVar }

// setupVar is one TX value, its value slice built once: Coraza's Map.Set
// copies it and keeps nothing of it.
type setupVar struct {
	name   string
	values []string
}

func init() {
	plugins.RegisterAction("tgsetup", func() plugintypes.Action { return &setupAction{} })
	// Coraza's JSON and URL-encoded body processors, copied, reading the
	// body without a 32 KiB buffer per request (internal/bodyproc).
	bodyproc.Register()
}

// setupArgument returns the tgsetup action's argument for the TX values of
// a setup (ordered "tx.name=value"): the lines, base64url-encoded, which
// SecLang carries unquoted.
func setupArgument(setvars []string) (string, error) {
	if _, err := setupVarsOf(setvars); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(setvars, "\n"))), nil
}

// setupVarsOf checks that every setvar sets a constant TX value.
func setupVarsOf(setvars []string) ([]setupVar, error) {
	var vars []setupVar
	for _, sv := range setvars {
		k, v, ok := strings.Cut(sv, "=")
		name, isTX := strings.CutPrefix(strings.ToLower(k), "tx.")
		if !ok || !isTX || name == "" || v == "" || v[0] == '+' || v[0] == '-' || strings.ContainsAny(v, "\n\r") || strings.Contains(v, "%{") {
			return nil, fmt.Errorf("setup value %q is not a constant TX value", sv)
		}
		vars = append(vars, setupVar{name, []string{v}})
	}
	return vars, nil
}

func (a *setupAction) Init(_ plugintypes.RuleMetadata, data string) error {
	b, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil || len(b) == 0 {
		return fmt.Errorf("tgsetup: argument is not a base64url setup: %q", data)
	}
	vars, err := setupVarsOf(strings.Split(string(b), "\n"))
	if err != nil {
		return fmt.Errorf("tgsetup: %w", err)
	}
	a.vars = vars
	return nil
}

// Evaluate sets the values as setvar:'tx.name=value' would.
func (a *setupAction) Evaluate(_ plugintypes.RuleMetadata, tx plugintypes.TransactionState) {
	col := tx.Variables().TX()
	for _, kv := range a.vars {
		col.Set(kv.name, kv.values)
	}
}

func (a *setupAction) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

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
