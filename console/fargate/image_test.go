package fargate

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
