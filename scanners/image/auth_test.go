package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRegistryCredentialsFromDockerConfig serves an image from a loopback
// registry that wants basic auth, and reads it with the credentials of a
// docker config file (authn.DefaultKeychain, as `docker login` leaves them).
func TestRegistryCredentialsFromDockerConfig(t *testing.T) {
	const user, pass = "ci-bot", "s3cret"
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="taskguard-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	refStr := host + "/private/app:1"
	ref, err := name.ParseReference(refStr)
	if err != nil {
		t.Fatal(err)
	}
	img := imageOf(t, []entry{{name: "etc/os-release", body: "ID=debian\n"}})
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}

	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if _, err := Open(context.Background(), refStr, Options{}); err == nil || !strings.Contains(err.Error(), "fetch image") || !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("without credentials: err = %v, want an unauthorized fetch error", err)
	}

	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	im, err := Open(context.Background(), refStr, Options{})
	if err != nil {
		t.Fatalf("with docker config credentials: %v", err)
	}
	assertFiles(t, collect(t, im), map[string]string{"etc/os-release": "ID=debian\n"})
}
