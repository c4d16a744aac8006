package scan

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

type debianFact struct {
	Package   string   `json:"package"`
	Source    string   `json:"source"`
	Installed string   `json:"installed"`
	Fixed     string   `json:"fixed"`
	CVEs      []string `json:"cves"`
}

func advisoriesDir(t *testing.T) string {
	return filepath.Join(testenv.SharedDir(t), "corpora", "advisories")
}

// openCorpusDB builds a DB from the shared advisories into a temporary
// directory and opens it.
func openCorpusDB(t *testing.T) *vulndb.DB {
	t.Helper()
	dir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dir, advisoriesDir(t), time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// expectedDebian reads a Debian list of the corpus as "package installed fixed" lines.
func expectedDebian(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(advisoriesDir(t), "debian-bookworm", file))
	if err != nil {
		t.Fatal(err)
	}
	var facts []debianFact
	if err := json.Unmarshal(raw, &facts); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range facts {
		out = append(out, f.Package+" "+f.Installed+" "+f.Fixed)
	}
	sort.Strings(out)
	return out
}

// debianFindings returns the report's dpkg findings as unique
// "package installed fixed" lines.
func debianFindings(r *Report) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range r.Findings {
		line := f.PkgName + " " + f.InstalledVersion + " " + f.FixedVersion
		if f.PkgType == "dpkg" && !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestBookwormRootFS scans root filesystems made by debootstrap from
// Debian's packages and expects exactly the corpus's Debian lists.
func TestBookwormRootFS(t *testing.T) {
	testenv.RequireRoot(t)
	db := openCorpusDB(t)
	tests := []struct {
		name     string
		include  []string
		expected string
	}{
		{"minbase", nil, "rootfs-expected-debian.json"},
		{"minbase with ssl and python", []string{"openssl", "libssl3", "libexpat1", "python3.11-minimal"}, "rootfs-ssl-expected-debian.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := scantest.Debootstrap(t, "bookworm", tt.include)
			rep, err := Image(context.Background(), root, db, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Artifact.OS == nil || rep.Artifact.OS.Family != "debian" || !strings.HasPrefix(rep.Artifact.OS.Name, "12.") {
				t.Errorf("os = %+v", rep.Artifact.OS)
			}
			if rep.Summary.Packages < 80 {
				t.Errorf("only %d packages found in a debootstrap'ed rootfs", rep.Summary.Packages)
			}
			want := expectedDebian(t, tt.expected)
			if got := debianFindings(rep); !reflect.DeepEqual(got, want) {
				t.Errorf("Debian findings\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestBookwormImageWithApps builds an image from the debootstrap'ed rootfs
// plus a layer with a Go binary and npm packages of known-vulnerable
// versions, serves it from a loopback registry and scans it.
func TestBookwormImageWithApps(t *testing.T) {
	testenv.RequireRoot(t)
	db := openCorpusDB(t)
	root := scantest.Debootstrap(t, "bookworm", nil)
	goBin, err := os.ReadFile(scantest.GoBinary(t, "golang.org/x/text", "v0.3.5", "golang.org/x/text/language"))
	if err != nil {
		t.Fatal(err)
	}
	appDir := t.TempDir()
	scantest.WriteFiles(t, appDir, map[string][]byte{
		"usr/local/bin/vulnapp":                             goBin,
		"srv/app/node_modules/lodash/package.json":          []byte(`{"name":"lodash","version":"4.17.15"}`),
		"srv/app/node_modules/minimist/package.json":        []byte(`{"name":"minimist","version":"1.2.5"}`),
		"srv/app/node_modules/@scope/minimist/package.json": []byte(`{"name":"@scope/minimist","version":"1.0.0"}`),
	})
	img, err := mutate.AppendLayers(empty.Image, scantest.DirLayer(t, root), scantest.DirLayer(t, appDir))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/bookworm/app:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	rep, err := Image(context.Background(), ref, db, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := debianFindings(rep), expectedDebian(t, "rootfs-expected-debian.json"); !reflect.DeepEqual(got, want) {
		t.Errorf("Debian findings\n got %q\nwant %q", got, want)
	}
	lang := map[string][]string{}
	for _, f := range rep.Findings {
		if f.PkgType != "dpkg" && f.PkgName != "stdlib" {
			lang[f.PkgName] = append(lang[f.PkgName], f.VulnerabilityID+" "+f.FixedVersion)
		}
	}
	for _, v := range lang {
		sort.Strings(v)
	}
	want := map[string][]string{
		// GHSA-p6mc-m468-83gw (fixed 4.17.20) and GHSA-35jh-r3h4-6jhm (4.17.21).
		"lodash": {"CVE-2020-8203 4.17.20", "CVE-2021-23337 4.17.21"},
		// GHSA-xvch-5gv4-984h: both fixed versions of its two ranges.
		"minimist": {"CVE-2021-44906 1.2.6, 0.2.4"},
		// GO-2021-0113, GO-2022-1059 and GO-2026-5970; not GO-2020-0015.
		"golang.org/x/text": {"CVE-2021-38561 0.3.7", "CVE-2022-32149 0.3.8", "CVE-2026-56852 0.39.0"},
	}
	if !reflect.DeepEqual(lang, want) {
		t.Errorf("language findings\n got %q\nwant %q", lang, want)
	}
}
