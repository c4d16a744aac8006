package analyzer

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// redHatDockerfile reads the Dockerfile Red Hat's build system leaves in
// each image it builds (root/buildinfo/Dockerfile-<name>-<version>-<release>):
// its com.redhat.component (or BZComponent) and architecture labels, with
// the version and release of the file's name, make the image's own NVR,
// "ubi8-container-8.3-227-x86_64". trivy-db maps such NVRs to the CPEs of
// the products the image belongs to (the "nvr" bucket beside "repository"
// in "Red Hat CPE"), as Trivy's redhat-dockerfile analyzer and Red Hat
// detector use it: advisories for those products then apply to the
// image's packages, as well as the advisories of its content sets.
//
// The parser reads only what it needs: LABEL, ENV and ARG instructions,
// line continuations, comments and the escape directive; $NAME and ${NAME}
// in label keys and values are replaced by ENV and ARG values declared
// before them, as Docker does. Anything else is skipped.
type redHatDockerfile struct{}

// TypeRedHatDockerfile names the analyzer of Red Hat build Dockerfiles.
const TypeRedHatDockerfile = "redhat-dockerfile"

// Bounds on a build Dockerfile: Red Hat's are a few KiB with a few dozen
// labels whose values are under 200 bytes.
const (
	maxBuildDockerfile  = 256 << 10
	maxDockerfileVars   = 512
	maxDockerfileValue  = 4 << 10
	maxDockerfileExpand = 1 << 20
	maxNVRPart          = 128
)

func (redHatDockerfile) Type() string { return TypeRedHatDockerfile }
func (redHatDockerfile) Version() int { return 1 }

func (redHatDockerfile) Required(p string, _ fs.FileInfo) bool {
	return path.Dir(p) == "root/buildinfo" && strings.HasPrefix(path.Base(p), "Dockerfile-")
}

func (redHatDockerfile) Analyze(_ context.Context, in Input) (*Result, error) {
	if len(in.Content) > maxBuildDockerfile {
		return nil, fmt.Errorf("build Dockerfile: %d bytes, more than the %d one may have", len(in.Content), maxBuildDockerfile)
	}
	labels, err := dockerfileLabels(string(in.Content))
	if err != nil {
		return nil, fmt.Errorf("build Dockerfile: %w", err)
	}
	component := labels["com.redhat.component"]
	if component == "" {
		component = labels["bzcomponent"]
	}
	arch := labels["architecture"]
	if component == "" || arch == "" {
		// not a Red Hat build's Dockerfile
		return nil, nil
	}
	version, release := nvrOfDockerfileName(path.Base(in.Path))
	if version == "" {
		version, release = labels["version"], labels["release"]
	}
	if version == "" || release == "" {
		return nil, fmt.Errorf("build Dockerfile: neither the file name nor the labels give the version and release of %.40q", component)
	}
	for _, part := range []string{component, version, release, arch} {
		if !isNVRPart(part) {
			return nil, fmt.Errorf("build Dockerfile: %.40q is not part of an NVR", part)
		}
	}
	return &Result{RedHatNVR: component + "-" + version + "-" + release + "-" + arch}, nil
}

// nvrOfDockerfileName returns the version and release that a build
// Dockerfile's name ends with: "Dockerfile-ubi8-8.3-227" -> "8.3", "227".
func nvrOfDockerfileName(name string) (version, release string) {
	rest, ok := strings.CutPrefix(name, "Dockerfile-")
	if !ok {
		return "", ""
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", ""
	}
	j := strings.LastIndexByte(rest[:i], '-')
	if j < 0 {
		return "", ""
	}
	return rest[j+1 : i], rest[i+1:]
}

// isNVRPart reports whether s may be a name, version, release or
// architecture of an NVR: RPM's characters, bounded.
func isNVRPart(s string) bool {
	if s == "" || len(s) > maxNVRPart {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._+~-", r):
		default:
			return false
		}
	}
	return true
}

// dockerfileLabels returns the labels a Dockerfile sets (keys lowercased;
// a later label replaces an earlier one), with ENV and ARG values
// substituted.
func dockerfileLabels(src string) (map[string]string, error) {
	escape := byte('\\')
	lines := strings.Split(src, "\n")
	// Parser directives come first: "# escape=`".
	for len(lines) > 0 {
		l := strings.TrimSpace(lines[0])
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "#")), "=")
		if !strings.HasPrefix(l, "#") || !ok || strings.ContainsAny(strings.TrimSpace(k), " \t") {
			break
		}
		if strings.EqualFold(strings.TrimSpace(k), "escape") {
			switch v = strings.TrimSpace(v); v {
			case "\\", "`":
				escape = v[0]
			default:
				return nil, fmt.Errorf("escape directive %.10q is neither \\ nor `", v)
			}
		}
		lines = lines[1:]
	}
	dp := &dockerfileParser{escape: escape, vars: map[string]string{}}
	labels := map[string]string{}
	var instr strings.Builder
	flush := func() error {
		line := strings.TrimSpace(instr.String())
		instr.Reset()
		word, args, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(word, '\t'); i >= 0 {
			word, args = word[:i], word[i+1:]+" "+args
		}
		switch strings.ToUpper(word) {
		case "LABEL", "ENV":
			pairs, err := dp.pairs(args)
			if err != nil {
				return fmt.Errorf("%s %.40q: %w", strings.ToUpper(word), args, err)
			}
			for _, kv := range pairs {
				if strings.EqualFold(word, "ENV") {
					if err := dp.set(kv[0], kv[1]); err != nil {
						return err
					}
				} else {
					labels[strings.ToLower(kv[0])] = kv[1]
				}
			}
		case "ARG":
			for _, f := range strings.Fields(args) {
				k, v, _ := strings.Cut(f, "=")
				if _, set := dp.vars[k]; set && v == "" {
					continue
				}
				if err := dp.set(k, strings.Trim(v, `"'`)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if t := strings.TrimLeft(l, " \t"); strings.HasPrefix(t, "#") || (t == "" && instr.Len() > 0) {
			// comments, and blank lines inside a continued instruction, are skipped
			continue
		}
		if len(l) > 0 && l[len(l)-1] == escape {
			instr.WriteString(l[:len(l)-1])
			instr.WriteByte(' ')
			continue
		}
		instr.WriteString(l)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return labels, nil
}

// dockerfileParser holds the variables ENV and ARG set so far, and how
// many bytes their substitutions have written (bounded, so that a short
// file naming a long value many times cannot take much memory or time).
type dockerfileParser struct {
	escape   byte
	vars     map[string]string
	expanded int
}

func (dp *dockerfileParser) set(k, v string) error {
	if _, ok := dp.vars[k]; !ok && len(dp.vars) >= maxDockerfileVars {
		return fmt.Errorf("more than %d ENV and ARG variables", maxDockerfileVars)
	}
	if len(v) > maxDockerfileValue {
		return fmt.Errorf("variable %.40q: a value longer than %d bytes", k, maxDockerfileValue)
	}
	dp.vars[k] = v
	return nil
}

// dockerfilePairs splits the arguments of LABEL or ENV into key-value
// pairs: `k=v "k 2"="v 2" k3='$x'`, or the legacy one-pair form `k v w`.
// Words are unquoted and, outside single quotes, have their variables
// replaced.
func (dp *dockerfileParser) pairs(args string) ([][2]string, error) {
	args = strings.TrimSpace(args)
	words, err := dp.words(args)
	if err != nil {
		return nil, err
	}
	if len(words) > 0 && !words[0].hasEq {
		// legacy form: the first word is the key, the rest the value
		vs := make([]string, 0, len(words)-1)
		for _, w := range words[1:] {
			if w.hasEq {
				w.text = w.key + "=" + w.text
			}
			vs = append(vs, w.text)
		}
		return [][2]string{{words[0].text, strings.Join(vs, " ")}}, nil
	}
	var out [][2]string
	for _, w := range words {
		if !w.hasEq {
			return nil, fmt.Errorf("%.40q is not key=value", w.text)
		}
		out = append(out, [2]string{w.key, w.text})
	}
	return out, nil
}

// dockerfileWord is one whitespace-separated word: for key=value words
// the unquoted key and, in text, the value.
type dockerfileWord struct {
	key, text string
	hasEq     bool
}

func (dp *dockerfileParser) words(s string) ([]dockerfileWord, error) {
	escape := dp.escape
	var words []dockerfileWord
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			return words, nil
		}
		var w dockerfileWord
		var cur strings.Builder
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			c := s[i]
			switch {
			case c == '=' && !w.hasEq:
				w.hasEq, w.key = true, cur.String()
				cur.Reset()
				i++
			case c == escape && i+1 < len(s):
				cur.WriteByte(s[i+1])
				i += 2
			case c == '\'':
				j := strings.IndexByte(s[i+1:], '\'')
				if j < 0 {
					return nil, fmt.Errorf("unterminated single quote")
				}
				cur.WriteString(s[i+1 : i+1+j])
				i += j + 2
			case c == '"':
				i++
				for i < len(s) && s[i] != '"' {
					switch {
					case s[i] == escape && i+1 < len(s):
						cur.WriteByte(s[i+1])
						i += 2
					case s[i] == '$':
						var err error
						if i, err = dp.expand(s, i, &cur); err != nil {
							return nil, err
						}
					default:
						cur.WriteByte(s[i])
						i++
					}
				}
				if i == len(s) {
					return nil, fmt.Errorf("unterminated double quote")
				}
				i++
			case c == '$':
				var err error
				if i, err = dp.expand(s, i, &cur); err != nil {
					return nil, err
				}
			default:
				cur.WriteByte(c)
				i++
			}
			if cur.Len() > maxDockerfileValue {
				return nil, fmt.Errorf("a value longer than %d bytes", maxDockerfileValue)
			}
		}
		w.text = cur.String()
		words = append(words, w)
	}
}

// expand writes the value of the variable that s names at i ("$NAME" or
// "${NAME}") and returns the index after it; an unset variable is empty,
// a "$" naming none is itself.
func (dp *dockerfileParser) expand(s string, i int, cur *strings.Builder) (int, error) {
	j := i + 1
	braced := j < len(s) && s[j] == '{'
	if braced {
		j++
	}
	k := j
	for k < len(s) && (s[k] == '_' || s[k] >= 'a' && s[k] <= 'z' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9') {
		k++
	}
	if k == j || braced && (k == len(s) || s[k] != '}') {
		cur.WriteByte('$')
		return i + 1, nil
	}
	v := dp.vars[s[j:k]]
	if dp.expanded += len(v); dp.expanded > maxDockerfileExpand || cur.Len()+len(v) > maxDockerfileValue {
		return 0, fmt.Errorf("variables expand to more than %d bytes in a value or %d in the file", maxDockerfileValue, maxDockerfileExpand)
	}
	cur.WriteString(v)
	if braced {
		k++
	}
	return k, nil
}
