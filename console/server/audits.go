package server

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

// The audit kinds each audit list shows.
var (
	runtimeKinds  = []api.AuditKind{api.AuditProcess, api.AuditNetwork, api.AuditDNS, api.AuditDefender, api.AuditImage}
	firewallKinds = []api.AuditKind{api.AuditWAF}
)

var auditParams = []string{"from", "to", "task", "container", "kind", "rule", "effect", "q", "limit", "cursor", "format"}

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
