package tlscert

import (
	"crypto/x509"
	"os"
	"strings"
	"testing"
)

func TestTrust(t *testing.T) {
	res, err := Load(Options{Dir: t.TempDir(), SANs: []string{"console.internal", "10.0.2.2"}})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := res.Chain()
	if err != nil || len(chain) != 1 || !chain[0].Equal(res.Leaf) {
		t.Fatalf("chain %v, %v", chain, err)
	}
	if PubliclyTrusted(chain) {
		t.Error("a self-signed certificate counts as publicly trusted")
	}
	// The PEM given to defenders is the certificate file the console keeps,
	// and parses back to the same certificate.
	file, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := TrustPEM(chain); got != string(file) {
		t.Errorf("TrustPEM differs from %s", res.Path)
	}
	back, err := ParsePEM([]byte(TrustPEM(chain)))
	if err != nil || len(back) != 1 || !back[0].Equal(res.Leaf) {
		t.Errorf("ParsePEM: %v %v", back, err)
	}
	// A pool with only that PEM verifies the certificate for its names.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(TrustPEM(chain)))
	for _, name := range []string{"console.internal", "10.0.2.2", "127.0.0.1", "localhost"} {
		if _, err := res.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
		if err := CheckCovers(res.Leaf, name); err != nil {
			t.Errorf("CheckCovers(%s): %v", name, err)
		}
	}
	err = CheckCovers(res.Leaf, "10.0.2.15")
	if err == nil || !strings.Contains(err.Error(), "does not cover 10.0.2.15 (it covers localhost, ") || !strings.Contains(err.Error(), "--san 10.0.2.15") {
		t.Errorf("CheckCovers(uncovered) = %v", err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", TrustPEM(chain) + "trailing"} {
		if _, err := ParsePEM([]byte(bad)); err == nil {
			t.Errorf("ParsePEM(%q) accepted", bad)
		}
	}
}
