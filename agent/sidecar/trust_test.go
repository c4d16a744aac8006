package sidecar

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestTrustTLSConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, []byte(selfSignedPEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		trust     Trust
		wantErr   string
		wantRoots bool
	}{
		{"system roots only", Trust{}, "", false},
		{"file", Trust{CAFile: good}, "", true},
		{"pem", Trust{CAPEM: selfSignedPEM(t)}, "", true},
		{"both", Trust{CAFile: good, CAPEM: selfSignedPEM(t)}, "", true},
		{"missing file", Trust{CAFile: filepath.Join(dir, "nope")}, "TASKGUARD_CONSOLE_CA", false},
		{"file with no certificate", Trust{CAFile: empty}, "no PEM certificate", false},
		{"pem garbage", Trust{CAPEM: "not a certificate"}, "TASKGUARD_CONSOLE_CA_PEM holds no PEM certificate", false},
		{"pem with a key only", Trust{CAFile: good, CAPEM: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "TASKGUARD_CONSOLE_CA_PEM holds no PEM certificate", false},
		{"file with a key only", Trust{CAFile: key}, "no PEM certificate", false},
		{"pem too large", Trust{CAPEM: strings.Repeat("A", maxCAPEM+1)}, "more than", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := tt.trust.TLSConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (conf.RootCAs != nil) != tt.wantRoots {
				t.Errorf("RootCAs set %v, want %v", conf.RootCAs != nil, tt.wantRoots)
			}
		})
	}
}

// TestTrustAgainstServer: the PEM of the server's certificate verifies it;
// another one fails with the hint that names the variable.
func TestTrustAgainstServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", `"1"`)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"revision":1}`)
	}))
	defer srv.Close()
	serverPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	get := func(tr Trust) error {
		conf, err := tr.TLSConfig()
		if err != nil {
			return err
		}
		c := &Console{BaseURL: srv.URL, Token: "secret-token", HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 10 * time.Second}}
		_, _, err = c.Policy(context.Background(), "", 0)
		return err
	}
	if err := get(Trust{CAPEM: serverPEM}); err != nil {
		t.Fatalf("the server's own certificate: %v", err)
	}
	err := get(Trust{CAPEM: selfSignedPEM(t)})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "TASKGUARD_CONSOLE_CA_PEM") || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("err %v: want an x509 unknown-authority error naming TASKGUARD_CONSOLE_CA_PEM, without the token", err)
	}
	if err := get(Trust{Insecure: true}); err != nil {
		t.Fatalf("insecure: %v", err)
	}
}
