package vulndb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/scantest"
)

var (
	corpusOnce sync.Once
	corpusDir  string
	corpusErr  error
	corpusNow  = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
)

// corpusDB builds, once per test binary, a DB from the shared advisories.
func corpusDB(t *testing.T) string {
	t.Helper()
	src := filepath.Join(testenv.SharedDir(t), "corpora", "advisories")
	corpusOnce.Do(func() {
		corpusDir, corpusErr = os.MkdirTemp("", "taskguard-vulndb-")
		if corpusErr == nil {
			_, corpusErr = Build(context.Background(), corpusDir, src, corpusNow)
		}
	})
	if corpusErr != nil {
		t.Fatal(corpusErr)
	}
	return corpusDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if corpusDir != "" {
		os.RemoveAll(corpusDir)
	}
	os.Exit(code)
}

func TestBuildFromCorpus(t *testing.T) {
	dir := corpusDB(t)
	meta, err := ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Version != SchemaVersion || !meta.UpdatedAt.Equal(corpusNow) || !meta.NextUpdate.Equal(corpusNow.Add(24*time.Hour)) {
		t.Errorf("metadata = %+v", meta)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	buckets, err := db.Buckets()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{BucketDebian12, BucketGo, BucketNpm}; !reflect.DeepEqual(buckets, want) {
		t.Errorf("buckets = %q, want %q", buckets, want)
	}

	// GO-2020-0001: gin before 1.6.0, stored under its CVE alias.
	advs, err := db.Advisories(BucketGo, "github.com/gin-gonic/gin")
	if err != nil {
		t.Fatal(err)
	}
	var gin *struct{ vuln, patched []string }
	for _, a := range advs {
		if a.VulnerabilityID == "CVE-2020-36567" {
			gin = &struct{ vuln, patched []string }{a.VulnerableVersions, a.PatchedVersions}
			if !reflect.DeepEqual(a.VendorIDs, []string{"GO-2020-0001"}) {
				t.Errorf("vendor IDs = %v", a.VendorIDs)
			}
			if a.DataSource == nil || a.DataSource.ID != SourceGo {
				t.Errorf("data source = %+v", a.DataSource)
			}
		}
	}
	if gin == nil || !reflect.DeepEqual(gin.vuln, []string{"<1.6.0"}) || !reflect.DeepEqual(gin.patched, []string{"1.6.0"}) {
		t.Fatalf("gin advisory = %+v (all: %+v)", gin, advs)
	}
	v, ok, err := db.Vulnerability("CVE-2020-36567")
	if err != nil || !ok {
		t.Fatalf("vulnerability: ok=%v err=%v", ok, err)
	}
	if !strings.Contains(v.Title, "log line injection") || len(v.References) == 0 {
		t.Errorf("vulnerability = %+v", v)
	}

	// GHSA-xvch-5gv4-984h: minimist has two ranges.
	advs, err = db.Advisories(BucketNpm, "minimist")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range advs {
		if a.VulnerabilityID == "CVE-2021-44906" {
			found = true
			if want := []string{">=1.0.0, <1.2.6", "<0.2.4"}; !reflect.DeepEqual(a.VulnerableVersions, want) {
				t.Errorf("minimist ranges = %q, want %q", a.VulnerableVersions, want)
			}
		}
	}
	if !found {
		t.Errorf("no minimist advisory: %+v", advs)
	}
	v, _, _ = db.Vulnerability("CVE-2021-44906")
	if v.VendorSeverity[SourceGHSA].String() != "CRITICAL" {
		t.Errorf("minimist severity = %v", v.VendorSeverity)
	}

	// Debian: pcre2 fixed in 10.42-1+deb12u2 for CVE-2026-103111; apt's
	// update without a CVE gets its own ID.
	advs, err = db.Advisories(BucketDebian12, "pcre2")
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 1 || advs[0].VulnerabilityID != "CVE-2026-103111" || advs[0].FixedVersion != "10.42-1+deb12u2" {
		t.Errorf("pcre2 advisories = %+v", advs)
	}
	advs, err = db.Advisories(BucketDebian12, "apt")
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 1 || advs[0].VulnerabilityID != UpdateIDPrefix+"apt-2.6.2" || advs[0].FixedVersion != "2.6.2" {
		t.Errorf("apt advisories = %+v", advs)
	}
}

func TestBuildSkipsWithdrawn(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "go-osv"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A real report, once as published and once marked withdrawn.
	raw, err := os.ReadFile(filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "go-osv", "GO-2020-0001.json"))
	if err != nil {
		t.Fatal(err)
	}
	withdrawn := bytes.Replace(raw, []byte(`"id": "GO-2020-0001"`), []byte(`"id": "GO-2020-0001", "withdrawn": "2024-01-01T00:00:00Z"`), 1)
	if err := os.WriteFile(filepath.Join(src, "go-osv", "w.json"), withdrawn, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := Build(context.Background(), dir, src, corpusNow)
	if err != nil {
		t.Fatal(err)
	}
	if st.Advisories != 0 {
		t.Errorf("withdrawn report gave %d advisories", st.Advisories)
	}
}

func TestBuildErrors(t *testing.T) {
	src := t.TempDir()
	if _, err := Build(context.Background(), t.TempDir(), src, corpusNow); err == nil || !strings.Contains(err.Error(), "no advisories") {
		t.Errorf("empty source: err = %v", err)
	}
	if err := os.MkdirAll(filepath.Join(src, "ghsa-npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "ghsa-npm", "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), t.TempDir(), src, corpusNow); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("broken file: err = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNoDB) {
		t.Errorf("empty dir: err = %v, want ErrNoDB", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(Path(dir), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteMetadata(dir, Metadata{Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "schema 1") {
		t.Errorf("old schema: err = %v", err)
	}
}

// OpenContext waits for the DB another holder in the process has open only
// as long as its context lasts (Open waited on a mutex that no context
// could end: a scan given --timeout hung there for as long as the holder
// kept the DB). The wait ends with an error wrapping the context's, and
// gives up nothing: once the holder closes, the DB opens again.
func TestOpenContextWaitEnds(t *testing.T) {
	dir := corpusDB(t)
	held, err := OpenContext(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled before", cancelled, context.Canceled},
		{"deadline while waiting", short, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				db, err := OpenContext(tt.ctx, dir)
				if err == nil {
					db.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "open vulnerability DB in "+dir) {
					t.Errorf("err = %v, want one wrapping %v that names the DB", err, tt.want)
				}
			case <-time.After(time.Minute): // a guard, not a measure: before, the wait never ended
				t.Fatal("OpenContext still waits a minute after its context ended")
			}
		})
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := OpenContext(context.Background(), dir)
	if err != nil {
		t.Fatalf("after the holder closed: %v", err)
	}
	db.Close()
}

type countingTransport struct {
	n atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func serveArtifact(t *testing.T, img v1.Image, repo string) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/" + repo
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestUpdateFromLoopbackRegistry(t *testing.T) {
	src := corpusDB(t)
	ref := serveArtifact(t, scantest.DBArtifact(t, src, LayerMediaType), "aquasecurity/trivy-db:2")
	dir := t.TempDir()
	tr := &countingTransport{}
	var progress bytes.Buffer
	now := corpusNow.Add(time.Hour)
	res, err := Update(context.Background(), dir, UpdateOptions{Repository: ref, Transport: tr, Progress: &progress, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Downloaded || !res.Metadata.DownloadedAt.Equal(now) || !res.Metadata.UpdatedAt.Equal(corpusNow) {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(progress.String(), "100%") {
		t.Errorf("progress = %q", progress.String())
	}
	want, _ := os.ReadFile(Path(src))
	got, err := os.ReadFile(Path(dir))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("downloaded trivy.db differs from the served one (err %v)", err)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if advs, err := db.Advisories(BucketNpm, "lodash"); err != nil || len(advs) == 0 {
		t.Errorf("lodash advisories after update: %v %v", advs, err)
	}
	db.Close()

	calls := tr.n.Load()
	res, err = Update(context.Background(), dir, UpdateOptions{Repository: ref, Transport: tr, Now: func() time.Time { return now }})
	if err != nil || res.Downloaded || tr.n.Load() != calls {
		t.Errorf("second update before NextUpdate: downloaded=%v err=%v requests %d->%d", res.Downloaded, err, calls, tr.n.Load())
	}
	later := corpusNow.Add(25 * time.Hour)
	res, err = Update(context.Background(), dir, UpdateOptions{Repository: ref, Transport: tr, Now: func() time.Time { return later }})
	if err != nil || !res.Downloaded {
		t.Errorf("update after NextUpdate: downloaded=%v err=%v", res.Downloaded, err)
	}
	calls = tr.n.Load()
	res, err = Update(context.Background(), dir, UpdateOptions{Repository: ref, Transport: tr, Offline: true, Force: true})
	if err != nil || res.Downloaded || tr.n.Load() != calls {
		t.Errorf("offline update: downloaded=%v err=%v requests %d->%d", res.Downloaded, err, calls, tr.n.Load())
	}
}

func TestUpdateErrors(t *testing.T) {
	src := corpusDB(t)
	wrongType := serveArtifact(t, scantest.DBArtifact(t, src, "application/vnd.example.other"), "x/db:2")
	corrupt := serveArtifact(t, func() v1.Image {
		img, err := mutate.Append(mutate.MediaType(empty.Image, ggcrtypes.OCIManifestSchema1),
			mutate.Addendum{Layer: static.NewLayer([]byte("\x1f\x8b\x08\x00garbage"), LayerMediaType)})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}(), "x/corrupt:2")
	// A manifest declaring a 1 GiB config: refused before any blob is read.
	huge := strings.Replace(wrongType, "x/db:2", "x/huge:2", 1)
	scantest.PutManifest(t, "http://"+huge[:strings.Index(huge, "/")], "x/huge", "2", scantest.Manifest(t, 1<<30, 0, 0))
	tests := []struct {
		name string
		opts UpdateOptions
		want string
	}{
		{"offline without DB", UpdateOptions{Offline: true}, "offline"},
		{"huge config", UpdateOptions{Repository: huge}, "image config of 1073741824 bytes: over taskguard's limit"},
		{"wrong media type", UpdateOptions{Repository: wrongType}, "no layer of media type"},
		{"corrupt layer", UpdateOptions{Repository: corrupt}, "corrupt"},
		{"missing artifact", UpdateOptions{Repository: strings.Replace(wrongType, "x/db:2", "no/such:2", 1)}, "fetch vulnerability DB"},
		{"bad reference", UpdateOptions{Repository: "Not A Ref"}, "parse DB repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Update(context.Background(), dir, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(Path(dir)); err == nil {
				t.Errorf("a failed update left a DB behind")
			}
		})
	}
}
