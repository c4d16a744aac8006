package sidecar

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Environment variables that tell the sidecar which certificates to trust
// for the console, beside the system's roots.
const (
	// EnvConsoleCA names a PEM file of the console's certificate or CA.
	EnvConsoleCA = "TASKGUARD_CONSOLE_CA"
	// EnvConsoleCAPEM holds the PEM text itself: protect writes it into the
	// defender container when the console's certificate is self-signed, since
	// a Fargate task has no volume to carry a file.
	EnvConsoleCAPEM = "TASKGUARD_CONSOLE_CA_PEM"
)

// maxCAPEM bounds the PEM text read from a file or the environment.
const maxCAPEM = 1 << 20

// Trust says how the sidecar verifies the console's certificate.
type Trust struct {
	// CAFile is a PEM file (EnvConsoleCA, --ca-file).
	CAFile string
	// CAPEM is PEM text (EnvConsoleCAPEM).
	CAPEM string
	// Insecure skips verification (tests only).
	Insecure bool
}

// TLSConfig returns the client configuration: the system's roots plus every
// certificate of CAFile and CAPEM. A file or text that holds no certificate
// is an error that names where it came from.
func (t Trust) TLSConfig() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure} //nolint:gosec // opt-in for tests
	if t.CAFile == "" && t.CAPEM == "" {
		return conf, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if t.CAFile != "" {
		fi, err := os.Stat(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("console CA file (%s, --ca-file): %w", EnvConsoleCA, err)
		}
		if fi.Size() > maxCAPEM {
			return nil, fmt.Errorf("console CA file %s (%s): %d bytes, more than the %d a CA bundle needs", t.CAFile, EnvConsoleCA, fi.Size(), maxCAPEM)
		}
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("console CA file (%s, --ca-file): %w", EnvConsoleCA, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("console CA file %s (%s): no PEM certificate in it", t.CAFile, EnvConsoleCA)
		}
	}
	if t.CAPEM != "" {
		if len(t.CAPEM) > maxCAPEM {
			return nil, fmt.Errorf("%s: %d bytes, more than the %d a CA bundle needs", EnvConsoleCAPEM, len(t.CAPEM), maxCAPEM)
		}
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, fmt.Errorf("%s holds no PEM certificate: give the console's certificate as -----BEGIN CERTIFICATE----- text (protect writes it)", EnvConsoleCAPEM)
		}
	}
	conf.RootCAs = pool
	return conf, nil
}

// trustHint adds what to do to a certificate verification error.
func trustHint(err error) error {
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return fmt.Errorf("%w (the console's certificate does not cover this address: start the console with --san for it, or protect with a consoleaddr the certificate covers)", err)
	}
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return fmt.Errorf("%w (the console's certificate is not trusted: give its PEM in %s, as protect writes it, or a file in %s)", err, EnvConsoleCAPEM, EnvConsoleCA)
	}
	return err
}
