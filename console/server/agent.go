package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/taskimages"
)

// maxWait caps ?wait= of the agent policy long-poll.
const maxWait = 60 * time.Second

// Audit batch limits.
const (
	auditBody      = 4 << 20
	maxAuditBatch  = 1000
	maxAuditID     = 128
	maxAuditString = 16 << 10
)

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
	s.metrics.defenderSeen(p.TaskFamily)
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

// postAudits stores a defender's batch. Records are stored once per ID. An
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
	now := time.Now().UTC()
	for i := range batch.Audits {
		a := &batch.Audits[i]
		if p.TaskFamily != "" {
			a.TaskFamily = p.TaskFamily
		}
		if a.Time.IsZero() {
			a.Time = now
		}
	}
	n, err := s.store.InsertAudits(r.Context(), batch.Audits, now)
	if err != nil {
		s.internalError(w, r, "store audits", err)
		return
	}
	s.metrics.auditsIngested(n, len(batch.Audits)-n)
	if p.TaskFamily != "" {
		s.metrics.defenderSeen(p.TaskFamily)
	}
	writeJSON(w, http.StatusAccepted, api.AuditIngestResponse{Received: len(batch.Audits), Stored: n, Duplicates: len(batch.Audits) - n})
}

// parseAuditBatch reads and checks the body of a POST of audits.
func parseAuditBatch(body io.Reader) (api.AuditBatch, error) {
	var batch api.AuditBatch
	if err := decodeJSON(body, &batch); err != nil {
		return api.AuditBatch{}, err
	}
	if err := checkBatch(batch); err != nil {
		return api.AuditBatch{}, err
	}
	return batch, nil
}

var auditKinds = []api.AuditKind{api.AuditProcess, api.AuditNetwork, api.AuditDNS, api.AuditWAF, api.AuditDefender}

func checkBatch(b api.AuditBatch) error {
	if len(b.Audits) == 0 {
		return errors.New(`request body: "audits" is empty`)
	}
	if len(b.Audits) > maxAuditBatch {
		return fmt.Errorf(`request body: %d audits in one batch, at most %d`, len(b.Audits), maxAuditBatch)
	}
	seen := make(map[string]bool, len(b.Audits))
	for i, a := range b.Audits {
		f := fmt.Sprintf("audits[%d]", i)
		switch {
		case strings.TrimSpace(a.ID) == "":
			return fmt.Errorf("%s.id is required", f)
		case len(a.ID) > maxAuditID:
			return fmt.Errorf("%s.id is longer than %d bytes", f, maxAuditID)
		case strings.HasPrefix(a.ID, taskimages.AlertIDPrefix):
			// The console writes these; a defender's record must not take the ID of an image alert.
			return fmt.Errorf("%s.id %q: the prefix %q is the console's", f, a.ID, taskimages.AlertIDPrefix)
		case seen[a.ID]:
			// Harmless, but a sign of a defender bug: the second would be lost.
			return fmt.Errorf("%s.id %q appears twice in the batch", f, a.ID)
		case !validKind(a.Kind):
			return fmt.Errorf("%s.kind %q is not one of process, network, dns, waf, defender", f, a.Kind)
		case a.Effect != "" && !a.Effect.Valid():
			return fmt.Errorf("%s.effect %q is not one of disable, alert, prevent", f, a.Effect)
		case len(a.Message) > maxAuditString:
			return fmt.Errorf("%s.message is longer than %d bytes", f, maxAuditString)
		}
		seen[a.ID] = true
	}
	return nil
}

func validKind(k api.AuditKind) bool {
	for _, x := range auditKinds {
		if k == x {
			return true
		}
	}
	return false
}
