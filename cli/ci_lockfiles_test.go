package cli

import (
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/taskguard/taskguard/scanners/report"
)

// TestCILockfiles: ci reads an application's lock files only with
// --lockfiles, and its SBOM then lists what they declare.
func TestCILockfiles(t *testing.T) {
	layer := layerFromFiles(t, map[string][]byte{
		"etc/os-release":             []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"var/lib/dpkg/status":        []byte(""),
		"srv/shop/yarn.lock":         []byte("# yarn lockfile v1\n\n\nminimist@^1.2.5:\n  version \"1.2.5\"\n"),
		"srv/shop/package-lock.json": []byte(`{"name":"shop","lockfileVersion":3,"packages":{"":{"name":"shop"},"node_modules/lodash":{"version":"4.17.20"},"node_modules/mkdirp/node_modules/minimist":{"version":"0.0.8","dev":true}}}`),
	})
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref := startRegistry(t) + "/shop/web:2"
	push(t, ref, img)
	db, dir := buildDB(t), t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"installed only", nil, nil},
		// corpus GHSA-xvch-5gv4-984h and GHSA-35jh-r3h4-6jhm.
		{"lockfiles", []string{"--lockfiles"}, []string{"CVE-2021-23337 lodash 4.17.20 srv/shop/package-lock.json", "CVE-2021-44906 minimist 1.2.5 srv/shop/yarn.lock"}},
		// minimist 0.0.8 is a dev dependency's: reported only on request.
		{"include-dev-deps", []string{"--lockfiles", "--include-dev-deps"}, []string{"CVE-2021-23337 lodash 4.17.20 srv/shop/package-lock.json", "CVE-2021-44906 minimist 0.0.8 srv/shop/package-lock.json", "CVE-2021-44906 minimist 1.2.5 srv/shop/yarn.lock"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jsonPath, sbomPath := filepath.Join(dir, tt.name+".json"), filepath.Join(dir, tt.name+".cdx.json")
			args := append([]string{"ci", "--image", ref, "--cache-dir", db, "--skip-db-update", "--format", "none", "--json", jsonPath, "--sbom", sbomPath}, tt.args...)
			if _, errOut, code := run(t, args...); code != 0 && code != 1 {
				t.Fatalf("code %d: %s", code, errOut)
			}
			var rep report.Report
			readJSON(t, jsonPath, &rep)
			var got []string
			for _, v := range rep.Vulnerabilities {
				got = append(got, v.VulnerabilityID+" "+v.PkgName+" "+v.InstalledVersion+" "+v.Location.Path)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("findings %q, want %q", got, tt.want)
			}
			var bom struct {
				Components []struct {
					Purl string `json:"purl"`
				} `json:"components"`
			}
			readJSON(t, sbomPath, &bom)
			purls := map[string]bool{}
			for _, c := range bom.Components {
				purls[c.Purl] = true
			}
			if purls["pkg:npm/minimist@1.2.5"] != (tt.args != nil) {
				t.Errorf("SBOM purls %v: minimist listed = %v, want %v", purls, purls["pkg:npm/minimist@1.2.5"], tt.args != nil)
			}
		})
	}
}
