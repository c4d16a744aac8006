package server

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
)

// Config is what the handlers need. Store, Auth and Logger are required.
type Config struct {
	Store  store.Store
	Auth   *auth.Authenticator
	Logger *slog.Logger
	// Stopping, when closed, ends long-polls at once (the server is shutting down).
	Stopping <-chan struct{}
}

// Server holds the handlers' dependencies.
type Server struct {
	store store.Store
	auth  *auth.Authenticator
	log   *slog.Logger

	metrics  *metrics
	stopping <-chan struct{}
}

// New returns the console's HTTP handler.
func New(cfg Config) http.Handler {
	s := &Server{store: cfg.Store, auth: cfg.Auth, log: cfg.Logger.With("component", "http"), metrics: newMetrics(), stopping: cfg.Stopping}
	mux := http.NewServeMux()
	known := map[string][]string{}
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.chain(rt))
		known[rt.path] = append(known[rt.path], rt.method)
	}
	// Everything else: 404, or 405 naming the allowed methods, through the
	// same chain so it is logged like any request.
	mux.Handle("/", s.chain(route{name: "not-found", maxBody: smallBody, handler: func(w http.ResponseWriter, r *http.Request) {
		if methods, ok := known[r.URL.Path]; ok {
			allow := strings.Join(methods, ", ")
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use "+allow)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	}}))
	return mux
}
