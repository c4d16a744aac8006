package console

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/server"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/sqlite"
	"github.com/taskguard/taskguard/console/store/sqlstore"
	"github.com/taskguard/taskguard/console/taskimages"
	"github.com/taskguard/taskguard/console/tlscert"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// Defaults of the console's settings.
const (
	DefaultDataDir = "./taskguard-data"
	DefaultListen  = ":8083"
	// DefaultAdminUser is the first admin's name when TASKGUARD_ADMIN_USER is not set.
	DefaultAdminUser = "admin"
)

// Files inside the data directory.
const (
	dbFile = "taskguard.db"
	tlsDir = "tls"
)

// Config is everything Start needs. DataDir and Listen are required.
type Config struct {
	// DataDir holds the database and the self-signed certificate.
	DataDir string
	// DB, when set, is a postgres:// URL: the data is kept there instead of
	// in SQLite in DataDir, and several consoles may share it.
	DB string
	// Listen is the TCP address to serve on, e.g. ":8083" or "127.0.0.1:0".
	Listen string
	// TLSCert and TLSKey name the operator's own PEM pair.
	TLSCert, TLSKey string
	// SANs are extra names for the self-signed certificate.
	SANs []string
	// InsecureHTTP serves plain HTTP instead of HTTPS.
	InsecureHTTP bool
	// SQLiteConns bounds the connections a SQLite store keeps open, 1 to
	// sqlstore.MaxSQLiteConns (0: sqlstore.DefaultSQLiteConns); PostgreSQL
	// ignores it.
	SQLiteConns int
	// AdminUser and AdminPassword make the first admin when the store has no
	// user yet; an empty password means a generated one, printed once to Stderr.
	AdminUser, AdminPassword string
	// Auth tunes tokens, hashing and the failure slow-down; its Store is set by Start.
	Auth auth.Config
	// Logger receives the structured logs (default: discard).
	Logger *slog.Logger
	// Stderr receives the one-time notice of a generated admin password.
	Stderr io.Writer
	// ShutdownTimeout bounds how long Shutdown waits for requests in flight (default 15s).
	ShutdownTimeout time.Duration
	// AuditRetention: audits older than this are deleted every ten minutes;
	// 0 keeps them forever.
	AuditRetention time.Duration
	// VulnDBDir holds the vulnerability DB that the images running in tasks
	// are matched against (`taskguard db update --cache-dir`); empty: no matching.
	VulnDBDir string
	// VulnDBUpdate is how often the DB is refreshed from its registry (only
	// downloaded when due); 0 never downloads (offline use).
	VulnDBUpdate time.Duration
	// VulnDBRepository is where the DB is downloaded from; empty means
	// vulndb.DefaultRepository.
	VulnDBRepository string

	// connState, set by tests, sees the HTTP server's connection states
	// (over HTTP/2 a connection turns active when the server takes a stream).
	connState func(net.Conn, http.ConnState)
}

// DefaultAuditRetention is how long audits are kept unless configured.
const DefaultAuditRetention = 30 * 24 * time.Hour

// Console is a running console server.
type Console struct {
	cfg    Config
	log    *slog.Logger
	store  store.Store
	srv    *http.Server
	ln     net.Listener
	url    string
	cert   *x509.Certificate
	served chan error
	stop   context.CancelFunc
	bg     chan struct{}
}

// Start opens the data directory, prepares the store, the first admin and
// the certificate, and starts serving. Stop it with Shutdown.
func Start(ctx context.Context, cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	log := cfg.Logger.With("component", "console")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	var opts []sqlstore.Option
	if cfg.SQLiteConns != 0 {
		opts = append(opts, sqlstore.WithSQLiteConns(cfg.SQLiteConns))
	}
	st, err := openStore(ctx, cfg.DataDir, cfg.DB, cfg.Logger, opts...)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: log, store: st, served: make(chan error, 1), bg: make(chan struct{})}
	if err := c.start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return c, nil
}

func (c *Console) start(ctx context.Context) error {
	authCfg := c.cfg.Auth
	authCfg.Store = c.store
	authn := auth.New(authCfg)
	// Agent credentials minted before they expired would work forever: they
	// get one credential lifetime from now, once (those with an expiry are
	// left as they are, so a restart or a second replica changes nothing).
	if n, expires, err := authn.BoundAgentTokens(ctx); err != nil {
		return err
	} else if n > 0 {
		c.log.Warn("agent credentials stored without an expiry now expire: rotate their families' credentials "+
			"(taskguard-console token rotate FAMILY) and update the tasks' secrets before then",
			"count", n, "expiresAt", expires.Format(time.RFC3339))
	}
	if err := ensureFirstAdmin(ctx, c.store, authn, c.cfg, c.log); err != nil {
		return err
	}

	var tlsConfig *tls.Config
	serving := server.Serving{PlainHTTP: c.cfg.InsecureHTTP}
	if !c.cfg.InsecureHTTP {
		res, err := tlscert.Load(tlscert.Options{
			CertFile: c.cfg.TLSCert, KeyFile: c.cfg.TLSKey,
			Dir: filepath.Join(c.cfg.DataDir, tlsDir), SANs: c.cfg.SANs,
		})
		if err != nil {
			return err
		}
		if res.Generated {
			c.log.Info("made a self-signed TLS certificate", "path", res.Path, "why", res.Reason,
				"names", append(res.Leaf.DNSNames, ipStrings(res.Leaf.IPAddresses)...))
		}
		c.log.Info("TLS certificate", "path", res.Path, "sha256", res.Fingerprint(), "notAfter", res.Leaf.NotAfter)
		c.cert = res.Leaf
		if serving.Chain, err = res.Chain(); err != nil {
			return err
		}
		tlsConfig = serverTLSConfig(res.Certificate)
	} else if c.cfg.TLSCert != "" || c.cfg.TLSKey != "" {
		return errors.New("--insecure-http serves plain HTTP: drop --tls-cert/--tls-key, or drop --insecure-http")
	}

	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	c.ln = ln
	stopping := make(chan struct{})
	images := &taskimages.Matcher{Dir: c.cfg.VulnDBDir, Logger: c.cfg.Logger}
	alerts := &taskimages.Alerter{Matcher: images, Store: c.store, Logger: c.cfg.Logger}
	c.srv = &http.Server{
		Handler:           server.New(server.Config{Store: c.store, Auth: authn, Logger: c.cfg.Logger, Stopping: stopping, TaskImages: images, ImageAlerts: alerts, Serving: serving}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnState:         c.cfg.connState,
		ErrorLog:          slog.NewLogLogger(c.cfg.Logger.With("component", "http").Handler(), slog.LevelDebug),
	}
	// Long-polls end at once on shutdown instead of holding it up.
	c.srv.RegisterOnShutdown(func() { close(stopping) })
	scheme := "https"
	if c.cfg.InsecureHTTP {
		scheme = "http"
		c.log.Warn("serving plain HTTP (--insecure-http): passwords and tokens cross the network unencrypted")
	}
	c.url = scheme + "://" + hostPort(ln.Addr())
	go func() {
		if tlsConfig != nil {
			c.served <- c.srv.ServeTLS(ln, "", "")
		} else {
			c.served <- c.srv.Serve(ln)
		}
	}()

	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = stop
	go c.housekeeping(bgCtx, authn)
	if c.cfg.VulnDBDir != "" {
		// Inventories stored while this console had no DB (or an older one)
		// are matched now, not only after the next DB update.
		go func() {
			if _, err := alerts.EvaluateAll(bgCtx); err != nil && bgCtx.Err() == nil {
				c.log.Warn("image alerts not evaluated at start", "err", err)
			}
		}()
	}
	if c.cfg.VulnDBDir != "" && c.cfg.VulnDBUpdate > 0 {
		reevaluate := func(ctx context.Context) {
			if _, err := alerts.EvaluateAll(ctx); err != nil {
				c.log.Warn("image alerts not re-evaluated after the DB update", "err", err)
			}
		}
		go (&taskimages.Updater{Matcher: images, Interval: c.cfg.VulnDBUpdate, Logger: c.cfg.Logger, Updated: reevaluate,
			Options: vulndb.UpdateOptions{Repository: c.cfg.VulnDBRepository}}).Run(bgCtx)
	}
	c.log.Info("console listening", "url", c.url, "dataDir", c.cfg.DataDir)
	return nil
}

// serverTLSConfig is the console's TLS: 1.3 as Go offers it, and 1.2 with
// forward-secret AEAD suites only (no CBC, no RSA key exchange).
func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// Only consulted for TLS 1.2; TLS 1.3 suites are all AEAD and not configurable.
		CipherSuites: tls12Suites,
	}
}

// tls12Suites are the TLS 1.2 suites the console offers: ECDHE with AES-GCM
// or ChaCha20-Poly1305, for ECDSA (the self-signed certificate) and RSA keys.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// URL is the base URL the console serves, e.g. https://127.0.0.1:8083.
func (c *Console) URL() string { return c.url }

// Addr is the address the console listens on.
func (c *Console) Addr() net.Addr { return c.ln.Addr() }

// Certificate is the served TLS certificate, nil for plain HTTP.
func (c *Console) Certificate() *x509.Certificate { return c.cert }

// serveErr receives the serve error when the server stops by itself.
func (c *Console) serveErr() <-chan error { return c.served }

// Shutdown stops accepting connections, waits for requests in flight (up to
// ctx or the configured timeout, then closes them) and closes the store.
func (c *Console) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ShutdownTimeout)
	defer cancel()
	c.log.Info("shutting down: waiting for requests in flight")
	err := c.srv.Shutdown(ctx)
	if err != nil {
		c.log.Warn("requests still running at the shutdown deadline: closing them", "err", err)
		c.srv.Close()
	}
	c.stop()
	<-c.bg
	if cerr := c.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	c.log.Info("stopped")
	return err
}

// Run starts the console and serves until ctx ends (SIGINT/SIGTERM in the
// command), then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	c, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-c.serveErr():
		c.Shutdown(context.WithoutCancel(ctx))
		return fmt.Errorf("serve: %w", err)
	}
	return c.Shutdown(context.WithoutCancel(ctx))
}

// housekeeping deletes expired tokens and audits past the retention now and
// then until ctx ends.
func (c *Console) housekeeping(ctx context.Context, authn *auth.Authenticator) {
	defer close(c.bg)
	tick := time.NewTicker(10 * time.Minute)
	defer tick.Stop()
	for {
		if n, err := authn.DeleteExpiredTokens(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("deleting expired tokens", "err", err)
		} else if n > 0 {
			c.log.Debug("deleted expired tokens", "count", n)
		}
		if n, err := authn.DeleteExpiredFailures(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("deleting old login-failure counts", "err", err)
		} else if n > 0 {
			c.log.Debug("deleted old login-failure counts", "count", n)
		}
		if r := c.cfg.AuditRetention; r > 0 {
			if n, err := c.store.DeleteAuditsBefore(ctx, time.Now().Add(-r)); err != nil && ctx.Err() == nil {
				c.log.Warn("deleting old audits", "err", err)
			} else if n > 0 {
				c.log.Info("deleted audits past the retention", "count", n, "retention", r)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ensureFirstAdmin makes the first admin when the store has no user. A
// generated password is printed to cfg.Stderr, once: the next start finds a user.
func ensureFirstAdmin(ctx context.Context, st store.Store, authn *auth.Authenticator, cfg Config, log *slog.Logger) error {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		if cfg.AdminPassword != "" {
			log.Info("users exist: TASKGUARD_ADMIN_USER/TASKGUARD_ADMIN_PASSWORD are used only at the first start, and are ignored")
		}
		return nil
	}
	name, password, generated := cfg.AdminUser, cfg.AdminPassword, false
	if name == "" {
		name = DefaultAdminUser
	}
	if password == "" {
		password, generated = auth.GeneratePassword(), true
	}
	err = authn.CreateUser(ctx, name, password, auth.RoleAdmin)
	if errors.Is(err, store.ErrExists) {
		return nil // another replica made it first
	}
	if err != nil {
		return fmt.Errorf("create the first admin from TASKGUARD_ADMIN_USER/TASKGUARD_ADMIN_PASSWORD: %w", err)
	}
	from := EnvAdminPassword
	if generated {
		from = "generated"
		fmt.Fprintf(cfg.Stderr, "taskguard-console: created the first admin user %q with the password:\n\n    %s\n\n"+
			"taskguard-console: it is shown only this once: keep it now (or set TASKGUARD_ADMIN_PASSWORD before the first start)\n",
			name, password)
	}
	log.Info("created the first admin user", "username", name, "passwordFrom", from)
	return nil
}

func hostPort(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("localhost", fmt.Sprint(tcp.Port))
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// openStore opens PostgreSQL when db is a postgres:// URL, else SQLite in dataDir.
func openStore(ctx context.Context, dataDir, db string, logger *slog.Logger, opts ...sqlstore.Option) (store.Store, error) {
	if db != "" {
		if !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
			return nil, errors.New("--db: want a postgres://user:password@host:port/database URL")
		}
		return postgres.Open(ctx, db, logger, opts...)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, dbFile), opts...)
}
