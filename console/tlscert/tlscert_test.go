package tlscert

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGeneratedOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	first, err := Load(Options{Dir: dir, SANs: []string{"console.example.com", "10.1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Generated || first.Reason == "" {
		t.Fatalf("first Load: Generated=%v Reason=%q, want a new certificate", first.Generated, first.Reason)
	}
	leaf := first.Leaf
	for _, dns := range []string{"localhost", "console.example.com"} {
		if !slices.Contains(leaf.DNSNames, dns) {
			t.Errorf("DNS SANs %v lack %s", leaf.DNSNames, dns)
		}
	}
	if h, _ := os.Hostname(); h != "" && !slices.Contains(leaf.DNSNames, h) {
		t.Errorf("DNS SANs %v lack the host name %s", leaf.DNSNames, h)
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3"} {
		if !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("IP SANs %v lack %s", leaf.IPAddresses, ip)
		}
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("VerifyHostname(127.0.0.1): %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}

	again, err := Load(Options{Dir: dir, SANs: []string{"console.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if again.Generated || again.Fingerprint() != first.Fingerprint() {
		t.Fatalf("second Load made a new certificate (%s, want %s): it must be kept", again.Fingerprint(), first.Fingerprint())
	}
}

func TestRegenerated(t *testing.T) {
	tests := []struct {
		name   string
		opts   func(dir string) Options
		reason string
	}{
		{"new name", func(dir string) Options { return Options{Dir: dir, SANs: []string{"new.example.com"}} }, "does not cover"},
		{"expiring", func(dir string) Options {
			return Options{Dir: dir, Now: func() time.Time { return time.Now().Add(validity - renewBefore/2) }}
		}, "expires"},
		{"corrupt", func(dir string) Options {
			os.WriteFile(filepath.Join(dir, CertFile), []byte("garbage"), 0o644)
			return Options{Dir: dir}
		}, "unusable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := Load(Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Load(tt.opts(dir))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Generated || !strings.Contains(res.Reason, tt.reason) || res.Fingerprint() == first.Fingerprint() {
				t.Fatalf("Generated=%v Reason=%q: want a new certificate because %q", res.Generated, res.Reason, tt.reason)
			}
		})
	}
}

func TestOwnPair(t *testing.T) {
	own := t.TempDir()
	made, err := Load(Options{Dir: own, SANs: []string{"mine.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	res, err := Load(Options{Dir: dataDir, CertFile: filepath.Join(own, CertFile), KeyFile: filepath.Join(own, KeyFile)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Generated || res.Fingerprint() != made.Fingerprint() {
		t.Fatal("the own pair was not used as is")
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Fatalf("with an own pair the data dir got %d files, want none", len(entries))
	}
	if _, err := Load(Options{Dir: dataDir, CertFile: filepath.Join(own, CertFile)}); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := Load(Options{CertFile: filepath.Join(own, "missing.crt"), KeyFile: filepath.Join(own, KeyFile)}); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("missing own cert: %v, want an error naming the file", err)
	}
}
