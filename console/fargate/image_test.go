package fargate

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/internal/ocilimit"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// pushImage pushes a small random image with the given config to a registry.
func pushImage(t *testing.T, ref string, cfg v1.Config) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// --extract-entrypoint reads ENTRYPOINT and CMD through go-containerregistry
// from a real registry on loopback.
func TestExtractEntrypointFromRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/reports:1.0"
	pushImage(t, ref, v1.Config{Entrypoint: []string{"/usr/local/bin/reports"}, Cmd: []string{"--serve"}})

	task := `{"family":"reports","containerDefinitions":[{"name":"reports","image":"` + ref + `"},` +
		`{"name":"sidecar","image":"` + ref + `","command":["--once"]}]}`
	out, err := ProtectJSON(context.Background(), []byte(task), Options{ExtractEntrypoint: true})
	if err != nil {
		t.Fatal(err)
	}
	td, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"reports": "/var/lib/taskguard/defender entrypoint -- /usr/local/bin/reports --serve",
		"sidecar": "/var/lib/taskguard/defender entrypoint -- /usr/local/bin/reports --once",
	} {
		c := td.Container(name)
		if got := strings.Join(append(c.EntryPoint(), c.Command()...), " "); got != want {
			t.Errorf("%s argv = %q, want %q", name, got, want)
		}
	}

	// A missing image is an error that names the container and the image.
	missing := `{"family":"r","containerDefinitions":[{"name":"web","image":"` + host + `/nope:1"}]}`
	_, err = ProtectJSON(context.Background(), []byte(missing), Options{ExtractEntrypoint: true})
	if err == nil || !strings.Contains(err.Error(), `container "web": read ENTRYPOINT from image `+host+`/nope:1`) {
		t.Fatalf("err = %v", err)
	}
}

// A registry whose manifest declares a 1 GiB config is refused before the
// config is asked for: ggcr would read it whole into the console's memory.
// The error names the container, the image and the limit.
func TestExtractEntrypointHostileRegistry(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var blobGets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			blobGets.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	scantest.PutManifest(t, srv.URL, "huge", "1", scantest.Manifest(t, 1<<30, 0, 0))

	task := `{"family":"r","containerDefinitions":[{"name":"web","image":"` + host + `/huge:1"}]}`
	_, err := ProtectJSON(context.Background(), []byte(task), Options{ExtractEntrypoint: true})
	if !errors.Is(err, ocilimit.ErrTooLarge) || !strings.Contains(err.Error(), `container "web"`) ||
		!strings.Contains(err.Error(), "image config of 1073741824 bytes") {
		t.Fatalf("err = %v, want the config size refused for container web", err)
	}
	if n := blobGets.Load(); n != 0 {
		t.Fatalf("%d blob requests, want none", n)
	}
}
