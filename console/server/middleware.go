package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/auth"
)

// middleware wraps a route's handler; it sees the route so limits and
// permissions come from the route table.
type middleware func(rt route, next http.Handler) http.Handler

// chain wraps rt's handler in the middleware, outermost first: a request
// meets them in this order, top to bottom.
func (s *Server) chain(rt route) http.Handler {
	stack := []middleware{
		s.requestID,    // X-Request-ID in, out and in the context
		s.logRequest,   // one log line per request: no bodies, no credentials
		s.recoverPanic, // a panicking handler answers 500, the server lives on
		s.secureHeaders,
		s.limitBody,   // route.maxBody, 413 beyond it
		s.requireRole, // route.perm: 401 / 429 / 403, principal into the context
	}
	var h http.Handler = rt.handler
	for i := len(stack) - 1; i >= 0; i-- {
		h = stack[i](rt, h)
	}
	return h
}

type requestInfo struct {
	id      string
	subject string
}

type infoKey struct{}

func info(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID keeps a caller's sane X-Request-ID or makes one, and echoes it.
func (s *Server) requestID(_ route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !requestIDPattern.MatchString(id) {
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), infoKey{}, &requestInfo{id: id})))
	})
}

func (s *Server) logRequest(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		ri := info(r.Context())
		s.metrics.observe(rt.name, r.Method, rec.status, time.Since(start))
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		// The path only: query strings and bodies stay out of the log.
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("id", ri.id),
			slog.String("route", rt.name),
			slog.String("method", logMethod(r.Method)),
			slog.String("path", clip(r.URL.Path, maxLoggedPath)),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", auth.Source(r)),
			slog.String("user", ri.subject),
		)
	})
}

// maxLoggedMethod and maxLoggedPath bound what a request's log line keeps
// of its method and path, which are the client's: any token, any bytes, up
// to the 64 KiB header limit, before authentication.
const (
	maxLoggedMethod = 16
	maxLoggedPath   = 512
)

// maxEchoedPath bounds what a 404 or 405 answer repeats of the path: the
// answer's JSON escapes a byte in up to 6 (\u003c), so 128 bytes, the
// method's 16 and the text keep it under 1 KiB.
const maxEchoedPath = 128

// logMethod is the method as a request's log line shows it: a method HTTP
// defines as is, any other its first maxLoggedMethod bytes and its length.
func logMethod(m string) string {
	if methodLabel(m) != "other" {
		return m
	}
	return clip(m, maxLoggedMethod)
}

// clip is s when it has at most n bytes, else its first n bytes, "…" and
// the length of the whole.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func (s *Server) recoverPanic(_ route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "id", info(r.Context()).id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(w, r)
	})
}

// hstsValue keeps browsers on HTTPS for a year. No includeSubDomains: the
// console does not speak for other hosts of its domain.
const hstsValue = "max-age=31536000"

func (s *Server) secureHeaders(_ route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if r.TLS != nil {
			// Browsers that reached the console over HTTPS never try plain HTTP again.
			h.Set("Strict-Transport-Security", hstsValue)
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses bodies over the route's limit: at once when
// Content-Length says so, else when the handler reads past it.
func (s *Server) limitBody(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > rt.maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, tooLarge(rt.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
		next.ServeHTTP(w, r)
	})
}

func tooLarge(limit int64) string {
	if limit == 0 {
		return "this endpoint takes no request body"
	}
	return "request body is larger than this endpoint's limit of " + byteSize(limit)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// unauthorized is the one body of every 401, whatever went wrong.
const unauthorized = "unauthorized"

func (s *Server) requireRole(rt route, next http.Handler) http.Handler {
	if rt.perm == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			if rt.page && errors.Is(err, auth.ErrUnauthorized) {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.authError(w, r, err)
			return
		}
		info(r.Context()).subject = p.Subject
		if !p.Role.Can(rt.perm) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("role %q may not %s", p.Role, rt.perm))
			return
		}
		if p.Role == auth.RoleAgent && p.TaskFamily == "" {
			fam, err := agentFamily(r, p)
			if err != nil {
				writeError(w, http.StatusForbidden, err.Error())
				return
			}
			p.TaskFamily = fam
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// familyHeader names the task family an agent-role user bound to several
// families acts for; ?family= does the same.
const familyHeader = "X-Taskguard-Task-Family"

// agentFamily is the task family an agent-role user's request acts for: its
// only family, or the one it names among its families. The handlers then
// serve that family's rules and file records under it, as for an agent
// token; an agent user bound to no family may do nothing.
func agentFamily(r *http.Request, p auth.Principal) (string, error) {
	want := r.Header.Get(familyHeader)
	if want == "" {
		want = r.URL.Query().Get("family")
	}
	switch {
	case len(p.TaskFamilies) == 0:
		return "", fmt.Errorf("agent user %q is bound to no task family: an admin binds it (taskguard-console user update --task-family)", p.Subject)
	case want == "" && len(p.TaskFamilies) == 1:
		return p.TaskFamilies[0], nil
	case want == "":
		return "", fmt.Errorf("agent user %q is bound to several task families (%s): name one with the %s header or ?family=", p.Subject, strings.Join(p.TaskFamilies, ", "), familyHeader)
	case slices.Contains(p.TaskFamilies, want):
		return want, nil
	}
	return "", fmt.Errorf("agent user %q is not bound to the task family %q", p.Subject, want)
}

// authenticate reads the Authorization header or, from a browser, the
// session cookie. A cookie authorizes a change only with the CSRF header,
// which no other site's page can add to a request to the console.
func (s *Server) authenticate(r *http.Request) (auth.Principal, error) {
	if r.Header.Get("Authorization") != "" {
		return s.auth.Request(r)
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return auth.Principal{}, auth.ErrUnauthorized
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(csrfHeader) != "1" {
		return auth.Principal{}, auth.ErrUnauthorized
	}
	return s.auth.Bearer(r.Context(), c.Value)
}

// authError answers a failed authentication: 401 with nothing more, 429 with
// Retry-After, or 500 when the store failed.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, err error) {
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		w.Header().Add("WWW-Authenticate", `Basic realm="taskguard-console", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="taskguard-console"`)
		writeError(w, http.StatusUnauthorized, unauthorized)
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(throttled.RetryAfter.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "too many failed logins for this user from this address: "+
			"retry in "+throttled.RetryAfter.Round(time.Second).String())
	case errors.Is(err, context.Canceled):
		// The caller went away (e.g. during a slow-down): nothing to answer.
	default:
		s.log.Error("authentication failed", "id", info(r.Context()).id, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
