package scantest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Manifest returns an OCI image manifest whose config is declared
// configSize bytes long, with layers layers and, when pad > 0, an
// annotation of pad bytes. Its digests name no blob: it is for tests of
// what a client does with a manifest before it reads any blob.
func Manifest(t testing.TB, configSize int64, layers, pad int) []byte {
	t.Helper()
	digest := func(i int) v1.Hash {
		return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: configSize, Digest: digest(1 << 30)},
	}
	for i := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: 100, Digest: digest(i)})
	}
	if pad > 0 {
		m.Annotations = map[string]string{"pad": strings.Repeat("x", pad)}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PutManifest stores an OCI image manifest under repo:tag in the
// registry at url (http://host:port), as it is.
func PutManifest(t testing.TB, url, repo, tag string, manifest []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", string(types.OCIManifestSchema1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest %s:%s: %s", repo, tag, resp.Status)
	}
}
