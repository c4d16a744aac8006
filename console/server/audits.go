package server

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/taskimages"
)

// The audit kinds each audit list shows.
var (
	runtimeKinds  = []api.AuditKind{api.AuditProcess, api.AuditNetwork, api.AuditDNS, api.AuditDefender, api.AuditImage, api.AuditThreat}
	firewallKinds = []api.AuditKind{api.AuditWAF}
)

var auditParams = []string{"from", "to", "task", "container", "kind", "detector", "rule", "effect", "q", "limit", "cursor", "format"}

// parseAuditQuery reads the filters of an audit list; unknown parameters and
// bad values are errors naming them.
func parseAuditQuery(v url.Values, kinds []api.AuditKind) (store.AuditQuery, string, error) {
	for k := range v {
		if !slices.Contains(auditParams, k) {
			return store.AuditQuery{}, "", fmt.Errorf("unknown query parameter %q: the parameters are %s", k, strings.Join(auditParams, ", "))
		}
	}
	q := store.AuditQuery{
		Kinds: kinds, Task: v.Get("task"), Container: v.Get("container"), Rule: v.Get("rule"),
		Text: v.Get("q"), Cursor: v.Get("cursor"),
	}
	if err := checkTaskFilter(q.Task); err != nil {
		return q, "", err
	}
	var err error
	if q.From, err = parseTime("from", v.Get("from")); err != nil {
		return q, "", err
	}
	if q.To, err = parseTime("to", v.Get("to")); err != nil {
		return q, "", err
	}
	if k := api.AuditKind(v.Get("kind")); k != "" {
		if !slices.Contains(kinds, k) {
			return q, "", fmt.Errorf("kind=%q: this list holds %s", k, kindList(kinds))
		}
		q.Kind = k
	}
	if d := v.Get("detector"); d != "" {
		if !slices.Contains(policy.Detectors, d) || !slices.Contains(kinds, api.AuditThreat) {
			return q, "", fmt.Errorf("detector=%q: the detectors are %s", d, strings.Join(policy.Detectors, ", "))
		}
		q.Detector, q.Kind = d, api.AuditThreat
	}
	if e := policy.Effect(v.Get("effect")); e != "" {
		if !e.Valid() {
			return q, "", fmt.Errorf("effect=%q: use disable, alert or prevent", e)
		}
		q.Effect = e
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxAuditPage {
			return q, "", fmt.Errorf("limit=%q: want 1 to %d", l, store.MaxAuditPage)
		}
		q.Limit = n
	}
	format := v.Get("format")
	switch format {
	case "", "json", "csv":
	default:
		return q, "", fmt.Errorf("format=%q: use json or csv", format)
	}
	return q, format, nil
}

// maxTaskARN bounds a task ARN given as the task filter.
const maxTaskARN = 1600

// checkTaskFilter validates ?task= of an audit list: a task family (ECS
// rules) or a task's ID or ARN (arn:...:ecs:REGION:ACCOUNT:task/...).
func checkTaskFilter(task string) error {
	if task == "" {
		return nil
	}
	ferr := checkFamily("task", task, false)
	if ferr == nil {
		return nil
	}
	if strings.HasPrefix(task, "arn:") && strings.Contains(task, ":task/") && len(task) <= maxTaskARN &&
		!strings.ContainsFunc(task, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil
	}
	return fmt.Errorf("%w (or give a task ARN, arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID)", ferr)
}

func kindList(kinds []api.AuditKind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// parseTime reads RFC 3339 or a duration back from now ("24h").
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s=%q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (24h)", name, v)
}

func (s *Server) runtimeAudits(w http.ResponseWriter, r *http.Request) {
	s.listAudits(w, r, runtimeKinds)
}

func (s *Server) firewallAudits(w http.ResponseWriter, r *http.Request) {
	s.listAudits(w, r, firewallKinds)
}

func (s *Server) listAudits(w http.ResponseWriter, r *http.Request, kinds []api.AuditKind) {
	q, format, err := parseAuditQuery(r.URL.Query(), kinds)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := s.store.Audits(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor="+strconv.Quote(q.Cursor)+" is not a cursor this console gave out")
		return
	}
	if err != nil {
		s.internalError(w, r, "query audits", err)
		return
	}
	if page.Next != "" {
		w.Header().Set("X-Next-Cursor", page.Next)
	}
	if format == "csv" {
		writeAuditsCSV(w, page.Audits)
		return
	}
	if page.Audits == nil {
		page.Audits = []api.Audit{}
	}
	writeJSON(w, http.StatusOK, api.AuditPage{Audits: page.Audits, Next: page.Next})
}

// auditCSVHeader are the CSV export's columns.
var auditCSVHeader = []string{"time", "id", "kind", "effect", "severity", "rule", "taskFamily", "taskId", "container", "image",
	"message", "count", "process", "domain", "ip", "port", "method", "path", "source", "protections"}

func writeAuditsCSV(w http.ResponseWriter, audits []api.Audit) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audits.csv"`)
	cw := csv.NewWriter(w)
	cw.Write(auditCSVHeader)
	for _, a := range audits {
		var proc, domain, ip, port, method, pth, src, prots string
		if a.Process != nil {
			proc = a.Process.Path
		}
		if a.Network != nil {
			domain, ip = a.Network.Domain, a.Network.IP
			if a.Network.Port != 0 {
				port = strconv.Itoa(a.Network.Port)
			}
		}
		if a.WAF != nil {
			method, pth, src, prots = a.WAF.Method, a.WAF.Path, a.WAF.Source, strings.Join(a.WAF.Protections, " ")
		}
		count := a.Count
		if count == 0 {
			count = 1
		}
		cw.Write([]string{a.Time.UTC().Format(time.RFC3339Nano), a.ID, string(a.Kind), string(a.Effect), a.Severity, a.Rule,
			a.TaskFamily, a.TaskID, a.Container, a.Image, csvSafe(a.Message), strconv.Itoa(count), proc, domain, ip, port,
			method, csvSafe(pth), src, prots})
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading attacker-chosen text (a WAF path,
// a message quoting one) as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Audit batch limits. A text field longer than maxAuditString is stored cut
// (api.Truncate), never refused: an attacker's 20 KB path must not cost the
// console the audit of the attack, nor the audits after it.
const (
	auditBody      = 4 << 20
	maxAuditBatch  = 1000
	maxAuditID     = 128
	maxAuditString = 16 << 10
)

// auditBatch is a parsed batch: the records fit to store, cleaned, and the
// ones that are not, named.
type auditBatch struct {
	received  int
	audits    []api.Audit
	index     []int // index[i] is the position of audits[i] in the batch
	truncated int
	rejected  []api.AuditRejection
}

// rawAuditBatch is the body of a POST of audits, each record kept raw so one
// malformed record does not cost the others.
type rawAuditBatch struct {
	Audits []json.RawMessage `json:"audits"`
}

// parseAuditBatch reads the body of a POST of audits. The batch itself must
// be well formed (one JSON object, 1 to maxAuditBatch records, within
// auditBody): otherwise the error names the problem and nothing is stored.
// Each record is then checked on its own (checkAudit).
func parseAuditBatch(body io.Reader) (auditBatch, error) {
	var raw rawAuditBatch
	if err := decodeJSON(body, &raw); err != nil {
		return auditBatch{}, err
	}
	if len(raw.Audits) == 0 {
		return auditBatch{}, errors.New(`request body: "audits" is empty`)
	}
	if len(raw.Audits) > maxAuditBatch {
		return auditBatch{}, fmt.Errorf(`request body: %d audits in one batch, at most %d`, len(raw.Audits), maxAuditBatch)
	}
	b := auditBatch{received: len(raw.Audits)}
	seen := make(map[string]bool, len(raw.Audits))
	for i, r := range raw.Audits {
		var a api.Audit
		// Unknown fields of a record are dropped, not refused: a newer
		// defender's records are still stored.
		if err := json.Unmarshal(r, &a); err != nil {
			b.rejected = append(b.rejected, api.AuditRejection{Index: i, ID: rawID(r),
				Reason: recordError(i, err)})
			continue
		}
		if err := checkAudit(i, a, seen); err != nil {
			b.rejected = append(b.rejected, api.AuditRejection{Index: i, ID: shortID(a.ID), Reason: err.Error()})
			continue
		}
		seen[a.ID] = true
		a, cut := a.Sanitized(maxAuditString)
		if len(cut) > 0 {
			b.truncated++
		}
		b.audits = append(b.audits, a)
		b.index = append(b.index, i)
	}
	return b, nil
}

// refuseBadFamilies moves the records whose taskFamily is not a valid ECS
// family name ("../etc", spaces, 300 characters) to the rejected ones,
// naming the field; the others are stored. Used for records an admin posts:
// an agent's records are filed under its credential's family.
func (b *auditBatch) refuseBadFamilies() {
	audits, index := b.audits[:0], b.index[:0]
	for i, a := range b.audits {
		if err := checkFamily(fmt.Sprintf("audits[%d].taskFamily", b.index[i]), a.TaskFamily, false); err != nil {
			b.rejected = append(b.rejected, api.AuditRejection{Index: b.index[i], ID: shortID(a.ID), Reason: err.Error()})
			continue
		}
		audits, index = append(audits, a), append(index, b.index[i])
	}
	b.audits, b.index = audits, index
	slices.SortFunc(b.rejected, func(x, y api.AuditRejection) int { return x.Index - y.Index })
}

// recordError names what is wrong with a record that did not decode.
func recordError(i int, err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return fmt.Sprintf("audits[%d].%s must be a JSON %s, not %s", i, typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	var perr *time.ParseError
	if errors.As(err, &perr) {
		return fmt.Sprintf("audits[%d]: a time %q is not RFC 3339 (2026-01-02T15:04:05Z)", i, api.Truncate(api.SafeText(perr.Value), 64))
	}
	return fmt.Sprintf("audits[%d] is not a valid record: %s", i, trimJSONPrefix(err.Error()))
}

// rawID digs the id out of a record that did not decode, to name it.
func rawID(r json.RawMessage) string {
	var x struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(r, &x)
	return shortID(x.ID)
}

// shortID is an ID fit to echo: safe text, at most maxAuditID bytes.
func shortID(id string) string {
	id = api.SafeText(id)
	if len(id) > maxAuditID {
		id = strings.ToValidUTF8(id[:maxAuditID], "")
	}
	return id
}

var auditKinds = []api.AuditKind{api.AuditProcess, api.AuditNetwork, api.AuditDNS, api.AuditWAF, api.AuditDefender, api.AuditThreat}

// checkAudit says why record i cannot be stored at all, or nil. Only what
// makes a record unstorable or unsafe is refused: no ID (it could not be
// stored once), an ID the console reserves or one repeated in the batch, a
// kind or effect the console does not know.
func checkAudit(i int, a api.Audit, seen map[string]bool) error {
	f := fmt.Sprintf("audits[%d]", i)
	switch {
	case strings.TrimSpace(a.ID) == "":
		return fmt.Errorf("%s.id is required", f)
	case len(a.ID) > maxAuditID:
		return fmt.Errorf("%s.id is longer than %d bytes", f, maxAuditID)
	case strings.HasPrefix(a.ID, taskimages.AlertIDPrefix):
		// The console writes these; a defender's record must not take the ID of an image alert.
		return fmt.Errorf("%s.id %q: the prefix %q is the console's", f, shortID(a.ID), taskimages.AlertIDPrefix)
	case seen[a.ID]:
		// A sign of a defender bug: the first is stored, this one would be lost.
		return fmt.Errorf("%s.id %q appears twice in the batch", f, shortID(a.ID))
	case !validKind(a.Kind):
		return fmt.Errorf("%s.kind %q is not one of process, network, dns, waf, defender, threat", f, api.Truncate(api.SafeText(string(a.Kind)), 64))
	case a.Effect != "" && !a.Effect.Valid():
		return fmt.Errorf("%s.effect %q is not one of disable, alert, prevent", f, api.Truncate(api.SafeText(string(a.Effect)), 64))
	}
	return nil
}

func validKind(k api.AuditKind) bool {
	return slices.Contains(auditKinds, k)
}

// ingestAudits files the batch's records under family (when the credential
// has one), gives records without a time now, and stores them. It stores the
// batch in one transaction; when the store refuses that, it stores the
// records one by one so that only the record that cannot be stored is named
// (and logged) and the rest are kept. It fails only when nothing could be
// stored for a reason that is not the records' (the database is away): the
// defender then keeps the batch and sends it again.
func (s *Server) ingestAudits(ctx context.Context, b auditBatch, family string, now time.Time) (api.AuditIngestResponse, error) {
	for i := range b.audits {
		a := &b.audits[i]
		if family != "" {
			a.TaskFamily = family
		}
		if a.Time.IsZero() {
			a.Time = now
		}
	}
	res := api.AuditIngestResponse{Received: b.received, Truncated: b.truncated, Rejected: b.rejected}
	if len(b.audits) > 0 {
		n, err := s.store.InsertAudits(ctx, b.audits, now)
		attempted := len(b.audits)
		if err != nil {
			if ctx.Err() != nil {
				return api.AuditIngestResponse{}, err
			}
			s.log.Warn("a batch of audits was refused whole; storing its records one by one", "records", len(b.audits), "err", err)
			n, attempted = 0, 0
			for i, a := range b.audits {
				k, err := s.store.InsertAudits(ctx, []api.Audit{a}, now)
				if err != nil {
					if ctx.Err() != nil {
						return api.AuditIngestResponse{}, err
					}
					s.log.Error("audit not stored", "index", b.index[i], "id", shortID(a.ID), "err", err)
					res.Rejected = append(res.Rejected, api.AuditRejection{Index: b.index[i], ID: shortID(a.ID),
						Reason: fmt.Sprintf("audits[%d]: the console could not store this record (its log says why)", b.index[i])})
					continue
				}
				n += k
				attempted++
			}
			if attempted == 0 {
				return api.AuditIngestResponse{}, fmt.Errorf("no record of the batch could be stored: %w", err)
			}
			slices.SortFunc(res.Rejected, func(x, y api.AuditRejection) int { return x.Index - y.Index })
		}
		res.Stored, res.Duplicates = n, attempted-n
	}
	s.metrics.auditsIngested(res.Stored, res.Duplicates, len(res.Rejected))
	return res, nil
}
