package server

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/scanners/report"
)

// The web pages: server-rendered HTML with one small script, no build step.
// A browser logs in with a form and holds the token in an HttpOnly,
// SameSite=Strict cookie. Changes go through the JSON API with the cookie
// and the csrfHeader, which a cross-site page cannot send without a CORS
// preflight the console never grants.

//go:embed ui
var uiFiles embed.FS

const (
	sessionCookie = "tg_session"
	csrfHeader    = "X-Taskguard-Csrf"
)

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"join": strings.Join,
	"json": func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	},
	"protections": func() []policy.Protection { return policy.Protections },
}).ParseFS(uiFiles, "ui/*.html"))

// uiRoutes are the pages; page routes send an unauthenticated browser to the login page.
func (s *Server) uiRoutes() []route {
	static, _ := fs.Sub(uiFiles, "ui/static")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	return []route{
		{method: "GET", path: "/ui/static/", name: "ui.static", page: true, handler: files.ServeHTTP},
		{method: "GET", path: "/login", name: "ui.login", page: true, handler: s.loginPage},
		{method: "POST", path: "/login", name: "ui.login.post", page: true, maxBody: smallBody, handler: s.loginSubmit},
		{method: "POST", path: "/logout", name: "ui.logout", page: true, maxBody: smallBody, handler: s.logout},
		{method: "GET", path: "/{$}", name: "ui.overview", page: true, perm: auth.PermRead, handler: s.overviewPage},
		{method: "GET", path: "/policies/runtime", name: "ui.runtime", page: true, perm: auth.PermRead, handler: s.runtimePage},
		{method: "GET", path: "/policies/waf", name: "ui.waf", page: true, perm: auth.PermRead, handler: s.wafPage},
		{method: "GET", path: "/policies/ci", name: "ui.ci", page: true, perm: auth.PermRead, handler: s.policyPage("ci.html", "ci", "CI rules")},
		{method: "GET", path: "/policies/images", name: "ui.images", page: true, perm: auth.PermRead, handler: s.policyPage("images.html", "images", "Image rules")},
		{method: "GET", path: "/users", name: "ui.users", page: true, perm: auth.PermManageUsers, handler: s.usersPage},
		{method: "GET", path: "/tokens", name: "ui.tokens", page: true, perm: auth.PermOwnCredentials, handler: s.tokensPage},
		{method: "GET", path: "/policies/history", name: "ui.policy.history", page: true, perm: auth.PermRead, handler: s.historyPage},
		{method: "GET", path: "/policies/history/{revision}", name: "ui.policy.revision", page: true, perm: auth.PermRead, handler: s.revisionPage},
		{method: "GET", path: "/protect", name: "ui.protect", page: true, perm: auth.PermRead, handler: s.protectPage},
		{method: "GET", path: "/audits/runtime", name: "ui.audits.runtime", page: true, perm: auth.PermRead, handler: s.auditsPage(runtimeKinds, "Runtime audits", api.PathRuntimeAudits)},
		{method: "GET", path: "/audits/waf", name: "ui.audits.waf", page: true, perm: auth.PermRead, handler: s.auditsPage(firewallKinds, "WAF audits", api.PathFirewallAudits)},
		{method: "GET", path: "/scans", name: "ui.scans", page: true, perm: auth.PermRead, handler: s.scansPage},
		{method: "GET", path: "/scans/{id}", name: "ui.scan", page: true, perm: auth.PermRead, handler: s.scanPage},
		{method: "GET", path: "/images/tasks", name: "ui.images.tasks", page: true, perm: auth.PermRead, handler: s.taskImagesPage},
		{method: "GET", path: "/images/tasks/{id}", name: "ui.images.task", page: true, perm: auth.PermRead, handler: s.taskImagePage},
	}
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	Nav   string
	User  string
	Role  string
	CanEdit,
	CanProtect,
	CanManageUsers bool
	Error string
	Data  any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name, nav, title string, data any) {
	pd := pageData{Title: title, Nav: nav, Data: data}
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		pd.User, pd.Role = p.Subject, string(p.Role)
		pd.CanEdit, pd.CanProtect = p.Role.Can(auth.PermEditPolicy), p.Role.Can(auth.PermProtect)
		pd.CanManageUsers = p.Role.Can(auth.PermManageUsers)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, pd); err != nil {
		s.log.Error("render page", "id", info(r.Context()).id, "page", name, "err", err)
	}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login.html", "", "Sign in", map[string]string{"Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a redirect target on this console: a path of its own,
// never a scheme, a host, a protocol-relative "//host" or "/\\host". Only
// printable ASCII other than the backslash is kept (a request URI is
// percent-encoded anyway): browsers drop tabs and newlines from URLs, so
// "/\t/evil.example" would become "//evil.example". Anything else is "/".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(next, "//") {
		return "/"
	}
	return next
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		badBody(w, err)
		return
	}
	user, pw, next := r.PostForm.Get("username"), r.PostForm.Get("password"), safeNext(r.PostForm.Get("next"))
	p, err := s.auth.Password(r.Context(), user, pw, auth.Source(r))
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, "login.html", "", "Sign in", map[string]string{"Next": next, "Username": user, "Error": "Wrong user name or password."})
		return
	case errors.As(err, &throttled):
		w.WriteHeader(http.StatusTooManyRequests)
		s.render(w, r, "login.html", "", "Sign in", map[string]string{"Next": next, "Username": user,
			"Error": "Too many failed sign-ins. Try again in " + throttled.RetryAfter.Round(time.Second).String() + "."})
		return
	case err != nil:
		s.internalError(w, r, "sign in", err)
		return
	}
	if p.Role == auth.RoleAgent {
		w.WriteHeader(http.StatusForbidden)
		s.render(w, r, "login.html", "", "Sign in", map[string]string{"Next": next, "Error": "Agent credentials cannot sign in to the console."})
		return
	}
	info(r.Context()).subject = p.Subject
	token, _, err := s.auth.IssueToken(r.Context(), p)
	if err != nil {
		s.internalError(w, r, "issue token", err)
		return
	}
	// A browser-session cookie: the token itself expires on the console.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout revokes the session's token on the console, not only in the
// browser: the old cookie value is refused from then on, as a cookie and as
// a bearer token. A bearer token sent to it is revoked too.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	var tokens []string
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		tokens = append(tokens, c.Value)
	}
	if scheme, value, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "bearer") {
		tokens = append(tokens, strings.TrimSpace(value))
	}
	for _, tok := range tokens {
		if p, err := s.auth.Bearer(r.Context(), tok); err == nil {
			if err := s.auth.RevokeBearer(r.Context(), p); err != nil {
				s.internalError(w, r, "revoke the session", err)
				return
			}
			info(r.Context()).subject = p.Subject
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type overview struct {
	Revision                       int64
	RuntimeRules, WAFRules, CIRule int
	Families                       []string
	Audits                         []api.Audit
	Scans                          []scanRow
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, err := s.store.Policy(ctx)
	if err != nil {
		s.internalError(w, r, "read policy", err)
		return
	}
	audits, err := s.store.Audits(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		s.internalError(w, r, "read audits", err)
		return
	}
	scans, err := s.store.Scans(ctx, store.ScanQuery{Limit: 5})
	if err != nil {
		s.internalError(w, r, "read scans", err)
		return
	}
	fams := s.metrics.familiesSeen()
	recent, _ := s.store.Audits(ctx, store.AuditQuery{From: time.Now().Add(-24 * time.Hour), Limit: 1000})
	for _, a := range recent.Audits {
		if a.TaskFamily != "" && !slices.Contains(fams, a.TaskFamily) {
			fams = append(fams, a.TaskFamily)
		}
	}
	slices.Sort(fams)
	s.render(w, r, "overview.html", "overview", "Overview", overview{
		Revision: p.Revision, RuntimeRules: len(p.Runtime), WAFRules: len(p.WAF), CIRule: len(p.CI),
		Families: fams, Audits: audits.Audits, Scans: scanRows(scans.Scans),
	})
}

func (s *Server) runtimePage(w http.ResponseWriter, r *http.Request) {
	s.policyPage("runtime.html", "runtime", "Runtime policy")(w, r)
}

func (s *Server) wafPage(w http.ResponseWriter, r *http.Request) {
	s.policyPage("waf.html", "waf", "WAF policy")(w, r)
}

// policyPage renders a rule list's editor page over the current policy.
func (s *Server) policyPage(page, nav, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.store.Policy(r.Context())
		if err != nil {
			s.internalError(w, r, "read policy", err)
			return
		}
		s.render(w, r, page, nav, title, p)
	}
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request) {
	users, err := s.store.Users(r.Context())
	if err != nil {
		s.internalError(w, r, "list users", err)
		return
	}
	out := make([]api.User, 0, len(users))
	for _, u := range users {
		out = append(out, apiUser(u))
	}
	s.render(w, r, "users.html", "users", "Users", map[string]any{"Users": out, "Roles": auth.Roles})
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	toks, err := s.tokensFor(r, p)
	if err != nil {
		s.internalError(w, r, "list tokens", err)
		return
	}
	s.render(w, r, "tokens.html", "tokens", "Tokens", map[string]any{"Tokens": toks})
}

// historyPageSize is how many policy changes the history page lists.
const historyPageSize = 200

func (s *Server) historyPage(w http.ResponseWriter, r *http.Request) {
	changes, err := s.store.PolicyChanges(r.Context(), historyPageSize+1)
	if err != nil {
		s.internalError(w, r, "list policy changes", err)
		return
	}
	more := len(changes) > historyPageSize
	if more {
		changes = changes[:historyPageSize]
	}
	s.render(w, r, "history.html", "history", "Policy history", map[string]any{"Changes": changes, "More": more})
}

func (s *Server) revisionPage(w http.ResponseWriter, r *http.Request) {
	rev, err := strconv.ParseInt(r.PathValue("revision"), 10, 64)
	if err != nil || rev < 1 {
		w.WriteHeader(http.StatusNotFound)
		s.render(w, r, "error.html", "history", "Not found", fmt.Sprintf("%q is not a policy revision.", r.PathValue("revision")))
		return
	}
	p, err := s.store.PolicyAt(r.Context(), rev)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		s.render(w, r, "error.html", "history", "Not found", fmt.Sprintf("There is no policy revision %d.", rev))
		return
	}
	if err != nil {
		s.internalError(w, r, "read policy revision", err)
		return
	}
	data := map[string]any{"Revision": rev, "Policy": p}
	if changes, err := s.store.PolicyChanges(r.Context(), historyPageSize); err == nil {
		for _, c := range changes {
			if c.Revision == rev {
				data["Change"] = c
			}
		}
	}
	s.render(w, r, "revision.html", "history", fmt.Sprintf("Policy revision %d", rev), data)
}

func (s *Server) protectPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "protect.html", "protect", "Generate Protected Task", map[string]string{"ConsoleAddr": r.Host})
}

type auditsView struct {
	Heading, APIPath, Query, Export string
	Kinds                           []api.AuditKind
	// Detectors are the built-in detectors to filter threat audits by (runtime list only).
	Detectors []string
	Filter    url.Values
	Audits    []api.Audit
	// Next is the relative URL of the next (older) page, Newest of the
	// first page with the same filters when this is not it.
	Next, Newest string
	PageSizes    []int
	Error        string
}

func (s *Server) auditsPage(kinds []api.AuditKind, heading, apiPath string) http.HandlerFunc {
	nav := "audits-runtime"
	if apiPath == api.PathFirewallAudits {
		nav = "audits-waf"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		for k, vals := range v {
			if len(vals) == 1 && vals[0] == "" {
				delete(v, k)
			}
		}
		view := auditsView{Heading: heading, APIPath: apiPath, Kinds: kinds, Filter: v, PageSizes: []int{100, 50, 500, 1000}}
		if slices.Contains(kinds, api.AuditThreat) {
			view.Detectors = policy.Detectors
		}
		if v.Get("cursor") != "" {
			nv := url.Values{}
			for k, vals := range v {
				if k != "cursor" {
					nv[k] = vals
				}
			}
			view.Newest = "?" + nv.Encode()
		}
		q, _, err := parseAuditQuery(v, kinds)
		if err == nil {
			var page store.AuditPage
			page, err = s.store.Audits(r.Context(), q)
			view.Audits = page.Audits
			if page.Next != "" {
				nv := url.Values{}
				for k, vals := range v {
					nv[k] = vals
				}
				nv.Set("cursor", page.Next)
				// The whole relative URL: html/template escapes a value
				// placed after a "?" as one query component.
				view.Next = "?" + nv.Encode()
			}
		}
		if err != nil {
			view.Error = err.Error()
		}
		ev := url.Values{}
		for k, vals := range v {
			if k != "cursor" {
				ev[k] = vals
			}
		}
		ev.Set("format", "csv")
		ev.Set("limit", "5000")
		view.Export = apiPath + "?" + ev.Encode()
		s.render(w, r, "audits.html", nav, heading, view)
	}
}

type scanRow struct {
	api.ScanSummary
	Counts report.Summary
}

func scanRows(scans []store.Scan) []scanRow {
	out := make([]scanRow, 0, len(scans))
	for _, sc := range scans {
		row := scanRow{ScanSummary: scanSummary(sc)}
		json.Unmarshal(sc.Summary, &row.Counts)
		out = append(out, row)
	}
	return out
}

func (s *Server) scansPage(w http.ResponseWriter, r *http.Request) {
	page, err := s.store.Scans(r.Context(), store.ScanQuery{Image: r.URL.Query().Get("image"), Limit: store.MaxScanPage})
	if err != nil {
		s.internalError(w, r, "list scans", err)
		return
	}
	s.render(w, r, "scans.html", "scans", "Scan results", map[string]any{"Scans": scanRows(page.Scans), "Image": r.URL.Query().Get("image")})
}

func (s *Server) scanPage(w http.ResponseWriter, r *http.Request) {
	sc, err := s.store.Scan(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		s.render(w, r, "error.html", "scans", "Not found", fmt.Sprintf("There is no scan %q.", r.PathValue("id")))
		return
	}
	if err != nil {
		s.internalError(w, r, "read scan", err)
		return
	}
	var rep report.Report
	if err := json.Unmarshal(sc.Report, &rep); err != nil {
		s.internalError(w, r, "decode scan report", err)
		return
	}
	s.render(w, r, "scan.html", "scans", "Scan "+sc.ID, map[string]any{"Scan": scanRows([]store.Scan{sc})[0], "Report": rep})
}
