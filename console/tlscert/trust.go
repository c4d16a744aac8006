package tlscert

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Chain is the served certificate chain, leaf first.
func (r Result) Chain() ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, der := range r.Certificate.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse served certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate is served")
	}
	return out, nil
}

// PubliclyTrusted reports whether chain (leaf first) verifies against the
// system's root certificates, so that a client needs nothing extra to trust
// it. A self-signed certificate, or one from a private CA, is not.
func PubliclyTrusted(chain []*x509.Certificate) bool {
	if len(chain) == 0 {
		return false
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// TrustPEM is the PEM a client puts in its root pool to trust chain: every
// certificate of it. A client that trusts the leaf itself verifies a
// self-signed certificate and one from a private CA alike (the names are
// still checked).
func TrustPEM(chain []*x509.Certificate) string {
	var b bytes.Buffer
	for _, c := range chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

// ParsePEM reads the certificates of a PEM text (e.g. a --console-ca file);
// anything that is not a certificate is an error.
func ParsePEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a certificate", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) > 0 || len(out) == 0 {
		return nil, errors.New("not a PEM file of certificates")
	}
	return out, nil
}

// CheckCovers says whether leaf is valid for host (a DNS name or an IP
// address), naming the names it covers when it is not.
func CheckCovers(leaf *x509.Certificate, host string) error {
	if err := leaf.VerifyHostname(host); err == nil {
		return nil
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	hint := "restart the console with --san " + host
	if net.ParseIP(host) == nil && !strings.Contains(host, ".") {
		hint += " (or give the name the defender resolves)"
	}
	return fmt.Errorf("the console's certificate does not cover %s (it covers %s): %s, or give a consoleaddr it covers", host, strings.Join(names, ", "), hint)
}

// ReadPEMFile reads a PEM file of certificates.
func ReadPEMFile(path string) ([]*x509.Certificate, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	certs, err := ParsePEM(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return certs, TrustPEM(certs), nil
}
