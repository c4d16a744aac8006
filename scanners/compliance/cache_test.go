package compliance

import (
	"context"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/taskguard/taskguard/scanners/image"
	"github.com/taskguard/taskguard/scanners/layercache"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// TestCheckImageLayerCache: with a layer cache, the checks find what they
// find without it, and once the layers are cached they are not read: the
// same image with its layer blobs destroyed still gives the same findings
// (and fails without the cache).
func TestCheckImageLayerCache(t *testing.T) {
	path := writeImage(t,
		v1.Config{Env: []string{"NODE_ENV=development"}},
		nil,
		[]tarFile{
			{"etc/ssl/private/server.key", 0o600, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"},
			{"etc/ssl/certs/ca.pem", 0o644, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
			{"root/.aws/credentials", 0o600, "[default]\n"},
			{"usr/bin/passwd", 0o4755, "ELF"},
			{"var/lib/apt/lists/x_Packages.lz4", 0o644, "x"},
			{"usr/sbin/sshd", 0o755, "ELF"},
			{"etc/app.conf", 0o666, "x"},
			{"bin/dash", 0o755, "ELF"},
		})
	in := ImageInput{Reference: "registry.example.com/app:latest", Config: mustConfig(t, path), Custom: []CustomCheck{
		{Check: Check{ID: "ACME-2", Title: "no shell", Severity: SeverityMedium}, FileAbsent: "/bin/*sh"},
		{Check: Check{ID: "ACME-3", Title: "production mode", Severity: SeverityLow}, EnvName: "NODE_ENV", EnvMatch: regexp.MustCompile("^production$")},
	}}
	want, err := CheckImage(context.Background(), openImage(t, path), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 6 {
		t.Fatalf("only %d findings: %+v", len(want), want)
	}
	cache, err := layercache.Open(t.TempDir(), layercache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(p string) ([]Finding, error) {
		img, err := image.Open(context.Background(), p, image.Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		return CheckImage(context.Background(), img, in)
	}
	for _, run := range []string{"cold", "warm"} {
		got, err := check(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s cache:\n got %+v\nwant %+v", run, got, want)
		}
	}
	spoiled := filepath.Join(t.TempDir(), "spoiled.tar")
	scantest.SpoilLayers(t, path, spoiled)
	if _, err := CheckImage(context.Background(), openImage(t, spoiled), in); err == nil {
		t.Fatal("the spoiled archive walks without an error: the test proves nothing")
	}
	got, err := check(spoiled)
	if err != nil {
		t.Fatalf("cached layers were read again: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from the cache alone:\n got %+v\nwant %+v", got, want)
	}
}
