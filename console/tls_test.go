package console

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// The console offers TLS 1.2 with forward-secret AEAD suites only: a client
// that offers nothing but CBC suites (or RSA key exchange) is refused, one
// offering GCM or ChaCha20 connects, and TLS 1.3 works as Go provides it.
// The console's HTTPS answers carry HSTS.
func TestTLSSuites(t *testing.T) {
	c := start(t, testConfig(t, t.TempDir()))
	addr := c.Addr().String()
	dial := func(cfg *tls.Config) (*tls.ConnectionState, error) {
		cfg.InsecureSkipVerify = true
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	weak := []struct {
		name  string
		suite uint16
	}{
		{"ECDHE-ECDSA-AES128-CBC-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		{"ECDHE-ECDSA-AES256-CBC-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
		{"ECDHE-ECDSA-AES128-CBC-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256},
		{"ECDHE-RSA-AES128-CBC-SHA", tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"RSA-AES128-GCM-SHA256", tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
		{"RSA-AES128-CBC-SHA", tls.TLS_RSA_WITH_AES_128_CBC_SHA},
	}
	for _, w := range weak {
		t.Run("refuses "+w.name, func(t *testing.T) {
			st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{w.suite}})
			if err == nil {
				t.Fatalf("TLS 1.2 with only %s connected (suite %s)", w.name, tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		t.Run("accepts "+tls.CipherSuiteName(s), func(t *testing.T) {
			st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != tls.VersionTLS12 || st.CipherSuite != s {
				t.Errorf("negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
	t.Run("TLS 1.3", func(t *testing.T) {
		st, err := dial(&tls.Config{MinVersion: tls.VersionTLS13})
		if err != nil || st.Version != tls.VersionTLS13 {
			t.Fatalf("TLS 1.3: %v", err)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
			t.Fatal("TLS 1.1 connected")
		}
	})
	// Every suite offered for TLS 1.2 is an AEAD one.
	for _, s := range tls12Suites {
		name := tls.CipherSuiteName(s)
		var found bool
		for _, cs := range tls.CipherSuites() {
			if cs.ID == s {
				found = true
			}
		}
		if !found {
			t.Errorf("suite %s is not one of Go's secure suites", name)
		}
		if !(contains(name, "_GCM_") || contains(name, "CHACHA20_POLY1305")) || !contains(name, "ECDHE") {
			t.Errorf("suite %s is not forward-secret AEAD", name)
		}
	}
	resp, err := trusting(c.Certificate()).Get(c.URL() + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security = %q", got)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
