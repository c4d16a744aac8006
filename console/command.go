package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/sqlstore"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// Environment variables the command reads.
const (
	EnvDataDir       = "TASKGUARD_DATA_DIR"
	EnvDB            = "TASKGUARD_DB"
	EnvAdminUser     = "TASKGUARD_ADMIN_USER"
	EnvAdminPassword = "TASKGUARD_ADMIN_PASSWORD"
)

// NewCommand returns the taskguard-console command: it serves the console,
// and its "user" subcommands manage users in the data directory.
func NewCommand() *cobra.Command { return newCommand(os.Getenv) }

func newCommand(getenv func(string) string) *cobra.Command {
	loc := &storeLocation{dataDir: getenv(EnvDataDir), db: getenv(EnvDB)}
	if loc.dataDir == "" {
		loc.dataDir = DefaultDataDir
	}
	var (
		cfg       = Config{Listen: DefaultListen, SQLiteConns: sqlstore.DefaultSQLiteConns}
		logFormat string
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "taskguard-console",
		Short: "Serve the taskguard console: protect Fargate task definitions, manage users",
		Long: `taskguard-console serves the console API over HTTPS. It needs no set-up: the
database (SQLite) and a self-signed TLS certificate are made in the data
directory at the first start, and so is the first admin user, from
TASKGUARD_ADMIN_USER and TASKGUARD_ADMIN_PASSWORD or with a generated password
printed once to stderr.

Environment: TASKGUARD_DATA_DIR (as --data-dir), TASKGUARD_ADMIN_USER,
TASKGUARD_ADMIN_PASSWORD.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			if cfg.AuditRetention < 0 {
				return fmt.Errorf("--audit-retention %s: give 0 (keep forever) or a positive duration such as 720h", cfg.AuditRetention)
			}
			if cfg.SQLiteConns < 1 || cfg.SQLiteConns > sqlstore.MaxSQLiteConns {
				return fmt.Errorf("--sqlite-conns %d: give 1 to %d (the connections the SQLite store keeps open)", cfg.SQLiteConns, sqlstore.MaxSQLiteConns)
			}
			if cfg.Auth.TokenTTL <= 0 {
				return fmt.Errorf("--token-ttl %s: give a positive duration such as 1h", cfg.Auth.TokenTTL)
			}
			if cfg.Auth.AgentTokenTTL == 0 {
				return errors.New("--agent-token-ttl 0: give a positive duration such as 2160h, or -1s for agent credentials that never expire")
			}
			cfg.DataDir, cfg.DB = loc.dataDir, loc.db
			cfg.AdminUser, cfg.AdminPassword = getenv(EnvAdminUser), getenv(EnvAdminPassword)
			cfg.Logger, cfg.Stderr = logger, cmd.ErrOrStderr()
			return Run(cmd.Context(), cfg)
		},
	}
	cmd.PersistentFlags().StringVar(&loc.dataDir, "data-dir", loc.dataDir, "directory of the database and the self-signed certificate (env "+EnvDataDir+")")
	cmd.PersistentFlags().StringVar(&loc.db, "db", loc.db, "postgres://user:password@host:port/database to keep the data in PostgreSQL instead of SQLite in the data directory (env "+EnvDB+")")
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve on")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate to serve instead of the self-signed one (with --tls-key)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "serve plain HTTP instead of HTTPS (only behind a TLS-terminating proxy, or for tests)")
	f.StringSliceVar(&cfg.SANs, "san", nil, "extra DNS name or IP address for the self-signed certificate (repeatable): every name or address defenders dial, as given to protect's consoleaddr")
	f.IntVar(&cfg.SQLiteConns, "sqlite-conns", cfg.SQLiteConns, fmt.Sprintf("connections the SQLite store keeps open, 1 to %d (more lets more slow reads run at once; PostgreSQL ignores it)", sqlstore.MaxSQLiteConns))
	f.DurationVar(&cfg.AuditRetention, "audit-retention", DefaultAuditRetention, "delete audits older than this (0 keeps them forever)")
	f.StringVar(&cfg.VulnDBDir, "vuln-db-dir", "", "vulnerability DB directory that images running in tasks are matched against (as `taskguard db update --cache-dir DIR` makes it)")
	f.StringVar(&cfg.VulnDBRepository, "vuln-db-repository", "", "registry artifact the vulnerability DB is downloaded from (a mirror); empty: "+vulndb.DefaultRepository)
	f.DurationVar(&cfg.VulnDBUpdate, "vuln-db-update", 12*time.Hour, "refresh the vulnerability DB this often (downloads only when due); 0 never downloads (offline)")
	f.DurationVar(&cfg.Auth.TokenTTL, "token-ttl", auth.DefaultTokenTTL, "lifetime of the tokens POST /api/v1/authenticate returns")
	f.DurationVar(&cfg.Auth.AgentTokenTTL, "agent-token-ttl", auth.DefaultAgentTokenTTL, "period of the agent credentials protect mints: one works until the end of the next period; -1s: they never expire")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.AddCommand(newUserCommand(loc))
	cmd.AddCommand(newTokenCommand(loc))
	return cmd
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func newUserCommand(loc *storeLocation) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage console users in the data directory (works while the console runs)",
	}
	cmd.AddCommand(newUserAddCommand(loc), newUserListCommand(loc))
	cmd.AddCommand(userLifecycleCommands(loc)...)
	return cmd
}

func newUserAddCommand(loc *storeLocation) *cobra.Command {
	var (
		role          string
		passwordStdin bool
		families      []string
	)
	cmd := &cobra.Command{
		Use:   "add --role ROLE NAME",
		Short: "Add a user; prints a generated password unless --password-stdin",
		Long: `Add a user to the console in the data directory. Roles: admin,
defender-manager (may protect task definitions), ci (may publish scan results
and protect task definitions: a pipeline's account),
auditor (read-only), agent (policy fetch and audit post only, for the task
families given with --task-family).

Without --password-stdin a password is generated and printed alone on stdout:
  PASS=$(taskguard-console user add --role defender-manager jenkins)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			password, generated := "", false
			if passwordStdin {
				if password, err = readPassword(cmd.InOrStdin()); err != nil {
					return err
				}
			} else {
				password, generated = auth.GeneratePassword(), true
			}
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				err := auth.New(auth.Config{Store: st}).CreateUser(cmd.Context(), args[0], password, r, families...)
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("user %q already exists", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "added user %q with role %s\n", args[0], r)
				if generated {
					fmt.Fprintln(cmd.OutOrStdout(), password)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "the user's role (required)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.Flags().StringSliceVar(&families, "task-family", nil, "task family an agent-role user defends (required for --role agent; repeatable)")
	cmd.MarkFlagRequired("role")
	return cmd
}

func newUserListCommand(loc *storeLocation) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				users, err := st.Users(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tROLE\tSTATE\tTASK FAMILIES\tCREATED")
				for _, u := range users {
					state := "enabled"
					if u.Disabled {
						state = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, state, strings.Join(u.TaskFamilies, ","), u.CreatedAt.Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("--password-stdin: stdin has no password")
	}
	return line, nil
}

// storeLocation is where the data lives: a PostgreSQL URL, or SQLite in the data directory.
type storeLocation struct{ dataDir, db string }

func withStore(ctx context.Context, loc *storeLocation, fn func(store.Store) error) error {
	st, err := openStore(ctx, loc.dataDir, loc.db, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}
