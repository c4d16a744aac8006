package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

// policyBody bounds a policy write.
const policyBody = 1 << 20

// section is one rule list of the policy document (runtime, waf or ci),
// served with the same five operations.
type section[T any] struct {
	key   string // the document's field: "runtime", "waf", "ci"
	path  string
	rules func(p *policy.Policy) *[]T
	name  func(r *T) *string
}

var (
	runtimeSection = section[policy.RuntimeRule]{key: "runtime", path: api.PathRuntimePolicy,
		rules: func(p *policy.Policy) *[]policy.RuntimeRule { return &p.Runtime },
		name:  func(r *policy.RuntimeRule) *string { return &r.Name }}
	wafSection = section[policy.WAFRule]{key: "waf", path: api.PathWAFPolicy,
		rules: func(p *policy.Policy) *[]policy.WAFRule { return &p.WAF },
		name:  func(r *policy.WAFRule) *string { return &r.Name }}
	ciSection = section[policy.CIRule]{key: "ci", path: api.PathCIPolicy,
		rules: func(p *policy.Policy) *[]policy.CIRule { return &p.CI },
		name:  func(r *policy.CIRule) *string { return &r.Name }}
	imagesSection = section[policy.ImageRule]{key: "images", path: api.PathImagePolicy,
		rules: func(p *policy.Policy) *[]policy.ImageRule { return &p.Images },
		name:  func(r *policy.ImageRule) *string { return &r.Name }}
)

// sectionRoutes are the routes of one rule list.
func sectionRoutes[T any](s *Server, sec section[T]) []route {
	one := sec.path + "/{name}"
	return []route{
		{method: "GET", path: sec.path, name: sec.key + ".list", perm: auth.PermRead, handler: sec.list(s)},
		{method: "PUT", path: sec.path, name: sec.key + ".replace", perm: auth.PermEditPolicy, maxBody: policyBody, handler: sec.replace(s)},
		{method: "POST", path: sec.path, name: sec.key + ".add", perm: auth.PermEditPolicy, maxBody: policyBody, handler: sec.add(s)},
		{method: "GET", path: one, name: sec.key + ".get", perm: auth.PermRead, handler: sec.get(s)},
		{method: "PUT", path: one, name: sec.key + ".update", perm: auth.PermEditPolicy, maxBody: policyBody, handler: sec.update(s)},
		{method: "DELETE", path: one, name: sec.key + ".delete", perm: auth.PermEditPolicy, handler: sec.remove(s)},
	}
}

func (sec section[T]) list(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.store.Policy(r.Context())
		if err != nil {
			s.internalError(w, r, "read policy", err)
			return
		}
		rules := *sec.rules(&p)
		if rules == nil {
			rules = []T{}
		}
		w.Header().Set("ETag", api.ETag(p.Revision))
		writeJSON(w, http.StatusOK, rules)
	}
}

func (sec section[T]) find(rules []T, name string) int {
	return slices.IndexFunc(rules, func(r T) bool { return *sec.name(&r) == name })
}

func (sec section[T]) get(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.store.Policy(r.Context())
		if err != nil {
			s.internalError(w, r, "read policy", err)
			return
		}
		rules := *sec.rules(&p)
		i := sec.find(rules, r.PathValue("name"))
		if i < 0 {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no %s rule named %q", sec.key, r.PathValue("name")))
			return
		}
		w.Header().Set("ETag", api.ETag(p.Revision))
		writeJSON(w, http.StatusOK, rules[i])
	}
}

func (sec section[T]) replace(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var rules []T
		if err := decodeJSON(r.Body, &rules); err != nil {
			badBody(w, err)
			return
		}
		s.changePolicy(w, r, http.StatusOK, store.PolicyChange{Action: "replace " + sec.key + " rules"}, func(p *policy.Policy) error {
			*sec.rules(p) = rules
			return nil
		})
	}
}

func (sec section[T]) add(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var rule T
		if err := decodeJSON(r.Body, &rule); err != nil {
			badBody(w, err)
			return
		}
		name := *sec.name(&rule)
		index := -1
		if v := r.URL.Query().Get("index"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("index=%q: want the position to insert at, 0 for first", v))
				return
			}
			index = n
		}
		s.changePolicy(w, r, http.StatusCreated, store.PolicyChange{Action: "add " + sec.key + " rule", Rule: name}, func(p *policy.Policy) error {
			rules := sec.rules(p)
			if name != "" && sec.find(*rules, name) >= 0 {
				return &httpError{http.StatusConflict, fmt.Sprintf("a %s rule named %q already exists: PUT %s/%s to change it", sec.key, name, sec.path, name)}
			}
			if index < 0 || index > len(*rules) {
				*rules = append(*rules, rule)
			} else {
				*rules = slices.Insert(*rules, index, rule)
			}
			return nil
		})
	}
}

func (sec section[T]) update(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var rule T
		if err := decodeJSON(r.Body, &rule); err != nil {
			badBody(w, err)
			return
		}
		name := r.PathValue("name")
		if *sec.name(&rule) == "" {
			*sec.name(&rule) = name
		}
		s.changePolicy(w, r, http.StatusOK, store.PolicyChange{Action: "update " + sec.key + " rule", Rule: name}, func(p *policy.Policy) error {
			rules := sec.rules(p)
			i := sec.find(*rules, name)
			if i < 0 {
				return &httpError{http.StatusNotFound, fmt.Sprintf("no %s rule named %q", sec.key, name)}
			}
			(*rules)[i] = rule
			return nil
		})
	}
}

func (sec section[T]) remove(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		s.changePolicy(w, r, http.StatusOK, store.PolicyChange{Action: "delete " + sec.key + " rule", Rule: name}, func(p *policy.Policy) error {
			rules := sec.rules(p)
			i := sec.find(*rules, name)
			if i < 0 {
				return &httpError{http.StatusNotFound, fmt.Sprintf("no %s rule named %q", sec.key, name)}
			}
			*rules = slices.Delete(*rules, i, i+1)
			return nil
		})
	}
}

// httpError is an answer a policy change decided on.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// changePolicy reads the policy, applies change, validates and saves it as
// the next revision, retrying when another writer got there first (unless
// the caller sent If-Match, which then answers 412). The answer is
// {"revision": N} with the new revision also in ETag.
func (s *Server) changePolicy(w http.ResponseWriter, r *http.Request, status int, c store.PolicyChange, change func(p *policy.Policy) error) {
	ifMatch := r.Header.Get("If-Match")
	c.Actor = info(r.Context()).subject
	for attempt := 0; ; attempt++ {
		p, err := s.store.Policy(r.Context())
		if err != nil {
			s.internalError(w, r, "read policy", err)
			return
		}
		if ifMatch != "" && ifMatch != "*" && api.ParseETag(ifMatch) != p.Revision {
			w.Header().Set("ETag", api.ETag(p.Revision))
			writeError(w, http.StatusPreconditionFailed, fmt.Sprintf("the policy is at revision %d, not %s: read it again", p.Revision, ifMatch))
			return
		}
		base := p.Revision
		imagesBefore, _ := json.Marshal(p.Images)
		if err := change(&p); err != nil {
			var he *httpError
			if errors.As(err, &he) {
				writeError(w, he.status, he.msg)
				return
			}
			s.internalError(w, r, "change policy", err)
			return
		}
		if err := errors.Join(p.Validate(), addressableNames(p)); err != nil {
			writeValidation(w, err)
			return
		}
		rev, err := s.store.SavePolicy(r.Context(), base, p, c)
		if errors.Is(err, store.ErrConflict) && ifMatch == "" && attempt < 10 {
			continue
		}
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusPreconditionFailed, "the policy changed meanwhile: read it again")
			return
		}
		if err != nil {
			s.internalError(w, r, "save policy", err)
			return
		}
		s.log.Info("policy changed", "id", info(r.Context()).id, "by", c.Actor, "action", c.Action, "rule", c.Rule, "revision", rev)
		if imagesAfter, _ := json.Marshal(p.Images); !bytes.Equal(imagesBefore, imagesAfter) {
			// New image rules apply to the containers already reported.
			if _, err := s.alerts.EvaluateAll(r.Context()); err != nil {
				s.log.Warn("image alerts not evaluated after the policy change", "id", info(r.Context()).id, "err", err)
			}
		}
		w.Header().Set("ETag", api.ETag(rev))
		writeJSON(w, status, struct {
			Revision int64 `json:"revision"`
		}{rev})
		return
	}
}

// addressableNames refuses rule names that cannot be one segment of a URL
// path: "." and "..", which browsers and proxies resolve away before the
// console sees them. Any other name, "a/b" or "../x" too, is addressed by
// its percent-encoded form.
func addressableNames(p policy.Policy) error {
	var errs []error
	check := func(list string, names []string) {
		for i, n := range names {
			if n == "." || n == ".." {
				errs = append(errs, &policy.FieldError{Field: fmt.Sprintf("%s[%d].name", list, i),
					Message: fmt.Sprintf("%q cannot be addressed in a URL: choose another name", n)})
			}
		}
	}
	names := func(n int, at func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = at(i)
		}
		return out
	}
	check("runtime", names(len(p.Runtime), func(i int) string { return p.Runtime[i].Name }))
	check("waf", names(len(p.WAF), func(i int) string { return p.WAF[i].Name }))
	check("ci", names(len(p.CI), func(i int) string { return p.CI[i].Name }))
	check("images", names(len(p.Images), func(i int) string { return p.Images[i].Name }))
	return errors.Join(errs...)
}

// writeValidation answers 400 naming every invalid field.
func writeValidation(w http.ResponseWriter, err error) {
	out := api.ValidationError{Error: err.Error()}
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *policy.FieldError
		if errors.As(e, &fe) {
			out.Fields = append(out.Fields, api.FieldError{Field: fe.Field, Message: fe.Message})
		}
	}
	walk(err)
	writeJSON(w, http.StatusBadRequest, out)
}

func (s *Server) wholePolicy(w http.ResponseWriter, r *http.Request) {
	p, err := s.store.Policy(r.Context())
	if err != nil {
		s.internalError(w, r, "read policy", err)
		return
	}
	w.Header().Set("ETag", api.ETag(p.Revision))
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) policyHistory(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want 1 to 1000", v))
			return
		}
		limit = n
	}
	changes, err := s.store.PolicyChanges(r.Context(), limit)
	if err != nil {
		s.internalError(w, r, "list policy changes", err)
		return
	}
	out := make([]api.PolicyChange, 0, len(changes))
	for _, c := range changes {
		out = append(out, api.PolicyChange(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) policyAt(w http.ResponseWriter, r *http.Request) {
	rev, err := strconv.ParseInt(r.PathValue("revision"), 10, 64)
	if err != nil || rev < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("revision %q: want a positive number", r.PathValue("revision")))
		return
	}
	p, err := s.store.PolicyAt(r.Context(), rev)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no policy revision %d", rev))
		return
	}
	if err != nil {
		s.internalError(w, r, "read policy revision", err)
		return
	}
	w.Header().Set("ETag", api.ETag(p.Revision))
	writeJSON(w, http.StatusOK, p)
}
