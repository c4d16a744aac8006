package analyzer

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// ubiManifest has the shape of the content manifests Red Hat's build
// system (atomic-reactor's content_manifest schema) writes into UBI layers.
const ubiManifest = `{
  "metadata": {
    "icm_version": 1,
    "icm_spec": "https://raw.githubusercontent.com/containerbuildsystem/atomic-reactor/master/atomic_reactor/schemas/content_manifest.json",
    "image_layer_index": 1
  },
  "content_sets": [
    "rhel-9-for-x86_64-appstream-rpms__9",
    "rhel-9-for-x86_64-baseos-rpms"
  ],
  "image_contents": [{"purl": "pkg:golang/example.com/x@v1.0.0"}]
}`

func TestRedHatContentManifest(t *testing.T) {
	a := redHatContentManifest{}
	wantRequired(t, a, map[string]bool{
		"root/buildinfo/content_manifests/ubi9-container-9.3-1361.json": true,
		"usr/share/buildinfo/rhcos.json":                                true,
		"root/buildinfo/content_manifests/notes.txt":                    false,
		"root/buildinfo/content_manifests/sub/x.json":                   false,
		"root/buildinfo/Dockerfile-ubi9-9.3-1361":                       false,
		"app/root/buildinfo/content_manifests/x.json":                   false,
	})
	for _, tc := range []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "ubi", in: ubiManifest, want: []string{"rhel-9-for-x86_64-appstream-rpms", "rhel-9-for-x86_64-baseos-rpms"}},
		// Only the generic "__N" build suffix goes; a minor release's
		// suffix names a real EUS repository and stays.
		{name: "eus suffix kept", in: `{"content_sets":["rhel-9-for-x86_64-baseos-eus-rpms__9_DOT_2"]}`, want: []string{"rhel-9-for-x86_64-baseos-eus-rpms__9_DOT_2"}},
		{name: "no content sets", in: `{"metadata":{},"content_sets":[]}`},
		{name: "blank names skipped", in: `{"content_sets":[" ", ""]}`},
		{name: "only a suffix", in: `{"content_sets":["__9"]}`}, // found by FuzzRedHatContentManifest
		{name: "malformed", in: `{"content_sets":`, wantErr: "content manifest: unexpected EOF"},
		{name: "not a list", in: `{"content_sets":"rhel"}`, wantErr: "content manifest: json: cannot unmarshal"},
		{name: "control characters", in: `{"content_sets":["a\nb"]}`, wantErr: "is not a repository name"},
		{name: "too long", in: `{"content_sets":["` + strings.Repeat("r", 300) + `"]}`, wantErr: "is not a repository name"},
		{name: "too many", in: `{"content_sets":[` + strings.Repeat(`"r",`, 300) + `"r"]}`, wantErr: "301 content sets, more than the 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := a.Analyze(context.Background(), Input{Path: "root/buildinfo/content_manifests/x.json", Content: []byte(tc.in)})
			if !wantError(t, err, tc.wantErr) {
				return
			}
			var got []string
			if res != nil {
				got = res.ContentSets
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("content sets %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzRedHatContentManifest(f *testing.F) {
	f.Add([]byte(ubiManifest))
	f.Add([]byte(`{"content_sets":["a__1","b"],"x":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := redHatContentManifest{}.Analyze(context.Background(), Input{Path: "root/buildinfo/content_manifests/x.json", Content: b})
		if err != nil || res == nil {
			return
		}
		if len(res.ContentSets) == 0 || len(res.ContentSets) > maxContentSets {
			t.Fatalf("%d content sets", len(res.ContentSets))
		}
		for _, cs := range res.ContentSets {
			if cs == "" || len(cs) > maxContentSetLength || strings.ContainsAny(cs, " \n\t") {
				t.Fatalf("content set %q", cs)
			}
		}
	})
}

// wantRequired checks which of the paths (keys) a takes.
func wantRequired(t *testing.T, a Analyzer, paths map[string]bool) {
	t.Helper()
	for p, want := range paths {
		if got := a.Required(p, nil); got != want {
			t.Errorf("%s: Required(%q) = %v, want %v", a.Type(), p, got, want)
		}
	}
}
