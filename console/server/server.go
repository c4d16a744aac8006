package server

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/taskimages"
)

// Config is what the handlers need. Store, Auth and Logger are required.
type Config struct {
	Store  store.Store
	Auth   *auth.Authenticator
	Logger *slog.Logger
	// Stopping, when closed, ends long-polls at once (the server is shutting down).
	Stopping <-chan struct{}
	// TaskImages matches container inventories against the console's
	// vulnerability DB; nil means a matcher without a DB (images are listed
	// unmatched, with a warning).
	TaskImages *taskimages.Matcher
	// ImageAlerts evaluates the image rules when an inventory arrives; nil
	// means one over TaskImages and Store.
	ImageAlerts *taskimages.Alerter
	// Serving is how the console serves (plain HTTP, or its TLS chain): the
	// protect endpoint tells defenders how to reach and trust it.
	Serving Serving
}

// Server holds the handlers' dependencies.
type Server struct {
	store store.Store
	auth  *auth.Authenticator
	log   *slog.Logger

	metrics  *metrics
	stopping <-chan struct{}
	images   *taskimages.Matcher
	alerts   *taskimages.Alerter
	serving  Serving
}

// New returns the console's HTTP handler.
func New(cfg Config) http.Handler {
	s := &Server{store: cfg.Store, auth: cfg.Auth, log: cfg.Logger.With("component", "http"), metrics: newMetrics(), stopping: cfg.Stopping, images: cfg.TaskImages, serving: cfg.Serving}
	if s.images == nil {
		s.images = &taskimages.Matcher{}
	}
	s.alerts = cfg.ImageAlerts
	if s.alerts == nil {
		s.alerts = &taskimages.Alerter{Matcher: s.images, Store: cfg.Store, Logger: cfg.Logger}
	}
	mux := http.NewServeMux()
	rts := s.routes()
	for _, rt := range rts {
		mux.Handle(rt.method+" "+rt.path, s.chain(rt))
	}
	// Everything else: 404, or 405 naming the allowed methods, through the
	// same chain so it is logged like any request. The answer names the
	// method and path cut as the log does (the path shorter still).
	mux.Handle("/", s.chain(route{name: "not-found", maxBody: smallBody, handler: func(w http.ResponseWriter, r *http.Request) {
		path := clip(r.URL.Path, maxEchoedPath)
		if methods := allowedMethods(rts, r.URL.Path); len(methods) > 0 {
			allow := strings.Join(methods, ", ")
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, logMethod(r.Method)+" is not allowed on "+path+"; use "+allow)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+path)
	}}))
	return mux
}

// allowedMethods lists the methods of the routes whose pattern matches path.
func allowedMethods(rts []route, path string) []string {
	var out []string
	for _, rt := range rts {
		if patternMatches(rt.path, path) && !slices.Contains(out, rt.method) {
			out = append(out, rt.method)
		}
	}
	return out
}

// patternMatches matches a route path ("/a/{name}", "/{$}", "/ui/static/")
// against a request path, as the mux would.
func patternMatches(pattern, path string) bool {
	if strings.HasSuffix(pattern, "/{$}") {
		return path == strings.TrimSuffix(pattern, "{$}")
	}
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(path, pattern)
	}
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if qs[i] == "" {
				return false
			}
			continue
		}
		if p != qs[i] {
			return false
		}
	}
	return true
}
