package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
)

// maxWait caps ?wait= of the agent policy long-poll.
const maxWait = 60 * time.Second

// agentPolicy serves a defender the rules of its task family, with the
// revision as ETag; If-None-Match with ?wait= holds the request until the
// revision changes (200) or the wait ends (304).
func (s *Server) agentPolicy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("wait=%q: want a duration such as 30s", v))
			return
		}
		wait = min(d, maxWait)
	}
	p, _ := auth.PrincipalFrom(r.Context())
	rev, err := s.store.PolicyRevision(r.Context())
	if err != nil {
		s.internalError(w, r, "read policy revision", err)
		return
	}
	// A defender that asks is seen, whatever the answer: one that only
	// long-polls (304 after 304) is as alive as one that gets the rules.
	s.metrics.defenderSeen(p.TaskFamily)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, rev) {
		if wait > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			go func() {
				select {
				case <-s.stopping: // nil when not configured: never
					cancel()
				case <-ctx.Done():
				}
			}()
			s.metrics.longPolls.Inc()
			rev, err = s.store.WaitPolicy(ctx, rev)
			s.metrics.longPolls.Dec()
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.internalError(w, r, "wait for a policy change", err)
				return
			}
			// It was held, alive, until now.
			s.metrics.defenderSeen(p.TaskFamily)
		}
		if etagMatches(inm, rev) {
			w.Header().Set("ETag", api.ETag(rev))
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	doc, err := s.store.Policy(r.Context())
	if err != nil {
		s.internalError(w, r, "read policy", err)
		return
	}
	w.Header().Set("ETag", api.ETag(doc.Revision))
	writeJSON(w, http.StatusOK, forFamily(doc, p.TaskFamily, q.Get("container"), q.Get("image")))
}

// etagMatches compares an If-None-Match list with the revision's ETag.
func etagMatches(header string, rev int64) bool {
	want := api.ETag(rev)
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == want || t == "*" {
			return true
		}
	}
	return false
}

// forFamily keeps the runtime and WAF rules that can apply to a task family
// (their task scope matches it); with container and image also given, the
// rules that apply to that container. CI rules are not a defender's business.
// Image rules are kept, in order, when their task scope matches the family
// (whatever container and image were given), so that the defender picks the
// same first-matching rule as the console and evaluates its custom checks.
// An empty family (an admin testing the endpoint) keeps every rule.
func forFamily(p policy.Policy, family, container, image string) policy.Policy {
	out := policy.Policy{Revision: p.Revision}
	keep := func(sc policy.Scope) bool {
		if family == "" {
			return true
		}
		if container != "" && image != "" {
			return sc.Matches(policy.Identity{TaskFamily: family, Container: container, Image: image})
		}
		return globAny(sc.Tasks, family)
	}
	for _, r := range p.Runtime {
		if keep(r.Scope) {
			out.Runtime = append(out.Runtime, r)
		}
	}
	for _, r := range p.WAF {
		if keep(r.Scope) {
			out.WAF = append(out.WAF, r)
		}
	}
	for _, r := range p.Images {
		if family == "" || globAny(r.Scope.Tasks, family) {
			out.Images = append(out.Images, r)
		}
	}
	return out
}

func globAny(patterns []string, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok || p == "*" {
			return true
		}
	}
	return false
}

// postAudits stores a defender's batch, record by record (ingestAudits). An
// agent credential belongs to one task family: every record is filed under
// that family whatever it says, so a defender cannot write another family's
// audits.
func (s *Server) postAudits(w http.ResponseWriter, r *http.Request) {
	batch, err := parseAuditBatch(r.Body)
	if err != nil {
		badBody(w, err)
		return
	}
	p, _ := auth.PrincipalFrom(r.Context())
	if p.TaskFamily == "" {
		// An admin files records under the families they name: each is
		// checked (an agent's records take the credential's family).
		batch.refuseBadFamilies()
	}
	res, err := s.ingestAudits(r.Context(), batch, p.TaskFamily, time.Now().UTC())
	if err != nil {
		s.internalError(w, r, "store audits", err)
		return
	}
	if p.TaskFamily != "" {
		s.metrics.defenderSeen(p.TaskFamily)
	}
	writeJSON(w, http.StatusAccepted, res)
}

// checkFamily validates a task family that entered the console through
// field (a JSON field or a query parameter) with auth.ValidateTaskFamily,
// naming the field. An empty family passes unless required.
func checkFamily(field, family string, required bool) error {
	if family == "" && !required {
		return nil
	}
	if err := auth.ValidateTaskFamily(family); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}
