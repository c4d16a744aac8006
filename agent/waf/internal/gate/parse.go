package gate

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// directive is one logical line of a SecLang configuration.
type directive struct {
	name string // lower case
	args string
	file string
}

// readDirectives expands text into logical lines the way Coraza's parser
// reads them (trimmed lines, backslash continuations joined, comments
// dropped), following Include into root.
func readDirectives(root fs.FS, text, file string, depth int) ([]directive, error) {
	if depth > 8 {
		return nil, fmt.Errorf("%s: includes nested too deep", file)
	}
	var out []directive
	var buf strings.Builder
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			buf.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		buf.WriteString(line)
		l := buf.String()
		buf.Reset()
		name, args, _ := strings.Cut(l, " ")
		name = strings.ToLower(name)
		if len(args) >= 3 && args[0] == '"' && args[len(args)-1] == '"' {
			args = strings.Trim(args, `"`)
		}
		if name != "include" {
			out = append(out, directive{name: name, args: args, file: file})
			continue
		}
		matches, err := fs.Glob(root, args)
		if err != nil || len(matches) == 0 {
			if err == nil {
				err = fs.ErrNotExist
			}
			return nil, fmt.Errorf("%s: include %s: %w", file, args, err)
		}
		for _, m := range matches {
			b, err := fs.ReadFile(root, m)
			if err != nil {
				return nil, fmt.Errorf("%s: include %s: %w", file, m, err)
			}
			sub, err := readDirectives(root, string(b), m, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
	}
	return out, nil
}

// parsedRule is one SecRule or SecAction as written, before compilation.
type parsedRule struct {
	vars, op string // op is empty for SecAction
	actions  []action
	file     string
}

// action is one rule action, its value unquoted.
type action struct{ name, value string }

func (r *parsedRule) has(name string) bool {
	return slices.ContainsFunc(r.actions, func(a action) bool { return a.name == name })
}

func (r *parsedRule) value(name string) string {
	for _, a := range r.actions {
		if a.name == name {
			return a.value
		}
	}
	return ""
}

func (r *parsedRule) id() int {
	id, _ := strconv.Atoi(r.value("id"))
	return id
}

func (r *parsedRule) tags() []string {
	var tags []string
	for _, a := range r.actions {
		if a.name == "tag" {
			tags = append(tags, a.value)
		}
	}
	return tags
}

// parseSecRule splits a SecRule's arguments as Coraza does: variables up to
// the first space, a double-quoted operator (\" unescaped), then the
// double-quoted actions.
func parseSecRule(args string) (vars, op string, actions []action, err error) {
	args = strings.Trim(args, " ")
	vars, rest, ok := strings.Cut(args, " ")
	if !ok {
		return "", "", nil, fmt.Errorf("invalid rule %q", args)
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" || rest[0] != '"' {
		return "", "", nil, fmt.Errorf("invalid operator in rule %q", args)
	}
	end := -1
	escapes := 0
	for i := 1; i < len(rest); i++ {
		if rest[i] == '\\' {
			escapes++
			continue
		}
		if rest[i] == '"' && escapes%2 == 0 {
			end = i
			break
		}
		escapes = 0
	}
	if end < 0 {
		return "", "", nil, fmt.Errorf("unterminated operator in rule %q", args)
	}
	op = strings.ReplaceAll(rest[1:end], `\"`, `"`)
	rest = strings.TrimLeft(rest[end+1:], " ")
	if rest == "" {
		return vars, op, nil, nil
	}
	if len(rest) < 2 || rest[0] != '"' || rest[len(rest)-1] != '"' {
		return "", "", nil, fmt.Errorf("invalid actions in rule %q", args)
	}
	actions, err = parseActions(rest[1 : len(rest)-1])
	return vars, op, actions, err
}

// parseActions splits "a,b:c,d:'e,f'" into actions, names lower case.
func parseActions(s string) ([]action, error) {
	var out []action
	quoted := false
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch {
			case s[i] == '\'' && (i == 0 || s[i-1] != '\\'):
				quoted = !quoted
				continue
			case s[i] != ',' || quoted:
				continue
			}
		}
		part := strings.TrimSpace(s[start:i])
		start = i + 1
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
			value = value[1 : len(value)-1]
		}
		out = append(out, action{name: name, value: value})
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in actions %q", s)
	}
	return out, nil
}

// ruleVar is one entry of a rule's variable list.
type ruleVar struct {
	name            string // upper case
	key             string // raw key ("" for none), /regex/ kept with slashes
	count, negation bool
}

// parseVars splits "A|!A:/x/|&B:c|XML:/*" into entries. Regular-expression
// keys may contain '|'.
func parseVars(s string) ([]ruleVar, error) {
	var out []ruleVar
	for len(s) > 0 {
		var v ruleVar
		if s[0] == '!' {
			v.negation, s = true, s[1:]
		}
		if len(s) > 0 && s[0] == '&' {
			v.count, s = true, s[1:]
		}
		i := strings.IndexAny(s, ":|")
		if i < 0 {
			v.name, s = s, ""
			out = append(out, v)
			break
		}
		v.name = s[:i]
		if s[i] == '|' {
			s = s[i+1:]
			out = append(out, v)
			continue
		}
		s = s[i+1:]
		switch {
		case strings.HasPrefix(s, "/") && v.name != "XML" && v.name != "JSON":
			end := regexEnd(s)
			if end < 0 {
				return nil, fmt.Errorf("unterminated key regex in %q", s)
			}
			v.key, s = s[:end+1], s[end+1:]
		case strings.HasPrefix(s, "'"):
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted key in %q", s)
			}
			v.key, s = s[1:end+1], s[end+2:]
		default:
			j := strings.IndexByte(s, '|')
			if j < 0 {
				j = len(s)
			}
			v.key, s = s[:j], s[j:]
		}
		s = strings.TrimPrefix(s, "|")
		out = append(out, v)
	}
	for i := range out {
		out[i].name = strings.ToUpper(out[i].name)
		if out[i].name == "" {
			return nil, fmt.Errorf("empty variable name")
		}
	}
	return out, nil
}

// regexEnd returns the index of the '/' closing the regex that s starts with.
func regexEnd(s string) int {
	escaped := false
	for i := 1; i < len(s); i++ {
		switch {
		case escaped:
			escaped = false
		case s[i] == '\\':
			escaped = true
		case s[i] == '/':
			return i
		}
	}
	return -1
}

// parseIDRanges parses SecRuleRemoveById arguments: IDs and ranges "a-b".
func parseIDRanges(args string) ([][2]int, error) {
	var out [][2]int
	for _, f := range strings.Fields(args) {
		f = strings.Trim(f, `"'`)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("rule id %q: %w", f, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("rule id %q: %w", f, err)
			}
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

// baseName is the file name of a rule file, for messages.
func baseName(file string) string { return path.Base(file) }
