// Package tlscert gives the console its TLS certificate: the operator's own
// certificate and key when given, otherwise a self-signed one made at first
// start and kept in the data directory, so clients that pin it (or use
// curl -k) keep working across restarts.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names of the self-signed pair inside the directory given to Load.
const (
	CertFile = "console.crt"
	KeyFile  = "console.key"
)

// Validity of a generated certificate, and how long before its end it is
// replaced at start.
const (
	validity    = 2 * 365 * 24 * time.Hour
	renewBefore = 30 * 24 * time.Hour
)

// Options says where the certificate comes from.
type Options struct {
	// CertFile and KeyFile name the operator's own PEM pair; both or neither.
	CertFile, KeyFile string
	// Dir keeps the self-signed pair when no own pair is given.
	Dir string
	// SANs are extra DNS names or IP addresses for the self-signed
	// certificate, beside localhost, 127.0.0.1, ::1 and the host name.
	SANs []string
	// Now returns the time (default time.Now).
	Now func() time.Time
}

// Result is the loaded certificate and how it was obtained.
type Result struct {
	Certificate tls.Certificate
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	// Generated is true when this call made a new self-signed certificate;
	// Reason says why.
	Generated bool
	Reason    string
	// Path is the certificate file.
	Path string
}

// Fingerprint is the SHA-256 of the certificate, hex, for clients to pin.
func (r Result) Fingerprint() string {
	sum := sha256.Sum256(r.Leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// Load returns the operator's pair when Options names one, else the kept
// self-signed pair, making a new one when there is none, it has expired or is
// about to, or it does not cover every requested name.
func Load(opts Options) (Result, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return Result{}, errors.New("give both --tls-cert and --tls-key, or neither")
	}
	if opts.CertFile != "" {
		return loadPair(opts.CertFile, opts.KeyFile)
	}
	names := defaultNames(opts.SANs)
	certPath, keyPath := filepath.Join(opts.Dir, CertFile), filepath.Join(opts.Dir, KeyFile)
	res, err := loadPair(certPath, keyPath)
	var reason string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "first start: no certificate kept yet"
	case err != nil:
		reason = fmt.Sprintf("the kept one is unusable: %v", err)
	case !now().Add(renewBefore).Before(res.Leaf.NotAfter):
		reason = fmt.Sprintf("the kept one expires %s", res.Leaf.NotAfter.Format(time.DateOnly))
	case !covers(res.Leaf, names):
		reason = "the kept one does not cover every requested name"
	default:
		return res, nil
	}
	if err := generate(certPath, keyPath, names, now()); err != nil {
		return Result{}, err
	}
	res, err = loadPair(certPath, keyPath)
	res.Generated, res.Reason = true, reason
	return res, err
}

func loadPair(certPath, keyPath string) (Result, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return Result{}, fmt.Errorf("load TLS certificate %s: %w", certPath, err)
	}
	return Result{Certificate: cert, Leaf: cert.Leaf, Path: certPath}, nil
}

// defaultNames are the names every generated certificate covers, then extra.
func defaultNames(extra []string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	for _, n := range extra {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func covers(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	return true
}

func generate(certPath, keyPath string, names []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("generate TLS serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"taskguard"}, CommonName: "taskguard-console"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode TLS key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	// The key goes first: a crash between the two writes leaves a key with an
	// old or missing certificate, which fails to load and is made anew.
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile replaces path atomically.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
