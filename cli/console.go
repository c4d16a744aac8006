package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/taskguard/taskguard/console/api"
)

// Environment variables holding console credentials, so they stay off
// command lines.
const (
	EnvConsoleUser     = "TASKGUARD_CONSOLE_USER"
	EnvConsolePassword = "TASKGUARD_CONSOLE_PASSWORD"
	EnvConsoleToken    = "TASKGUARD_CONSOLE_TOKEN"
)

// consoleFlags are the flags of commands that talk to a console.
type consoleFlags struct {
	url      string
	user     string
	caFile   string
	insecure bool
}

func (f *consoleFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "console", "", "console URL (https://host:port); credentials from $"+EnvConsoleToken+", or $"+EnvConsoleUser+" and $"+EnvConsolePassword)
	fl.StringVar(&f.user, "console-user", "", "console user (default $"+EnvConsoleUser+"); the password comes from $"+EnvConsolePassword)
	fl.StringVar(&f.caFile, "console-ca", "", "PEM certificate(s) to trust for the console (e.g. its self-signed certificate)")
	fl.BoolVar(&f.insecure, "console-insecure", false, "do not verify the console's TLS certificate (like curl -k); for evaluations only")
}

// client returns a console client, or nil when no console was given.
func (f *consoleFlags) client() (*api.Client, error) {
	if f.url == "" {
		return nil, nil
	}
	var opts []api.Option
	user := f.user
	if user == "" {
		user = os.Getenv(EnvConsoleUser)
	}
	switch token, password := os.Getenv(EnvConsoleToken), os.Getenv(EnvConsolePassword); {
	case token != "":
		opts = append(opts, api.WithToken(token))
	case user != "" && password != "":
		opts = append(opts, api.WithBasicAuth(user, password))
	default:
		return nil, fmt.Errorf("--console: no credentials: set $%s, or $%s (or --console-user) and $%s", EnvConsoleToken, EnvConsoleUser, EnvConsolePassword)
	}
	if f.caFile != "" || f.insecure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, fmt.Errorf("--console-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--console-ca: %s holds no PEM certificate", f.caFile)
			}
			cfg.RootCAs = pool
		}
		cfg.InsecureSkipVerify = f.insecure
		opts = append(opts, api.WithTLSConfig(cfg))
	}
	return api.NewClient(f.url, opts...)
}
