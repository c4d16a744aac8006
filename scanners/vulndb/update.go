package vulndb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/taskguard/taskguard/internal/ocilimit"
)

// DefaultRepository is where the database is published.
const DefaultRepository = "ghcr.io/aquasecurity/trivy-db:2"

// LayerMediaType is the media type of the database layer of the artifact.
const LayerMediaType types.MediaType = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"

// maxDBFile bounds one file unpacked from the artifact.
const maxDBFile = 8 << 30

// ErrOffline is returned when an update is needed but the network may not be used.
var ErrOffline = errors.New("offline")

// UpdateOptions tune Update.
type UpdateOptions struct {
	// Repository is the artifact reference; empty means DefaultRepository.
	Repository string
	// Offline forbids any network access: Update only checks that a
	// database is present.
	Offline bool
	// Force downloads even when the cached database is not due.
	Force bool
	// Keychain resolves registry credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil means the default.
	Transport http.RoundTripper
	// Insecure allows plain HTTP to a registry that is not on loopback.
	Insecure bool
	// Progress receives a progress bar while downloading; nil means none.
	Progress io.Writer
	// Now is the current time; nil means time.Now.
	Now func() time.Time
}

// UpdateResult says what Update did.
type UpdateResult struct {
	// Downloaded is true when a new database was installed.
	Downloaded bool
	// Reason explains why nothing was downloaded.
	Reason   string
	Metadata Metadata
}

// Update makes sure dir holds a current database: it downloads the artifact
// unless the cached one's NextUpdate is still in the future (or Offline).
func Update(ctx context.Context, dir string, opts UpdateOptions) (UpdateResult, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	meta, merr := ReadMetadata(dir)
	_, serr := os.Stat(Path(dir))
	have := merr == nil && serr == nil && meta.Version == SchemaVersion
	if opts.Offline {
		if !have {
			return UpdateResult{}, fmt.Errorf("%w: no usable vulnerability DB in %s and --offline forbids downloading one", ErrOffline, dir)
		}
		return UpdateResult{Reason: "offline: using the cached DB", Metadata: meta}, nil
	}
	if have && !opts.Force && now().Before(meta.NextUpdate) {
		return UpdateResult{Reason: fmt.Sprintf("cached DB is current until %s", meta.NextUpdate.UTC().Format(time.RFC3339)), Metadata: meta}, nil
	}
	repo := opts.Repository
	if repo == "" {
		repo = DefaultRepository
	}
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(repo, nopts...)
	if err != nil {
		return UpdateResult{}, fmt.Errorf("parse DB repository %q: %w", repo, err)
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc),
		remote.WithTransport(ocilimit.Transport(opts.Transport))}
	img, err := remote.Image(ref, ropts...)
	if err != nil {
		return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: %w", ref, err)
	}
	if err := ocilimit.CheckManifest(img); err != nil {
		return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: layers: %w", ref, err)
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: media type: %w", ref, err)
		}
		if mt != LayerMediaType {
			continue
		}
		size, err := l.Size()
		if err != nil {
			return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: size: %w", ref, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: %w", ref, err)
		}
		meta, err := unpack(ctx, dir, newProgress(rc, size, opts.Progress), now())
		cerr := rc.Close()
		if err != nil {
			return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: %w", ref, err)
		}
		if cerr != nil {
			return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: %w", ref, cerr)
		}
		return UpdateResult{Downloaded: true, Metadata: meta}, nil
	}
	return UpdateResult{}, fmt.Errorf("fetch vulnerability DB %s: the artifact has no layer of media type %s", ref, LayerMediaType)
}

// unpack reads the gzipped tar of the DB layer into a temporary directory,
// checks it and installs it in dir.
func unpack(ctx context.Context, dir string, r io.Reader, now time.Time) (Metadata, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Metadata{}, err
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return Metadata{}, err
	}
	defer os.RemoveAll(tmp)
	zr, err := gzip.NewReader(r)
	if err != nil {
		return Metadata{}, fmt.Errorf("DB layer is not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	got := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return Metadata{}, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Metadata{}, fmt.Errorf("DB layer: read tar (corrupt or truncated download): %w", err)
		}
		base := filepath.Base(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || (base != "trivy.db" && base != "metadata.json") || filepath.Clean(hdr.Name) != base {
			continue
		}
		if hdr.Size > maxDBFile {
			return Metadata{}, fmt.Errorf("DB layer: %s is %d bytes, more than the %d limit", base, hdr.Size, int64(maxDBFile))
		}
		f, err := os.Create(filepath.Join(tmp, base))
		if err != nil {
			return Metadata{}, err
		}
		n, err := io.Copy(f, io.LimitReader(tr, maxDBFile))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return Metadata{}, fmt.Errorf("DB layer: write %s: %w", base, err)
		}
		if n != hdr.Size {
			return Metadata{}, fmt.Errorf("DB layer: %s is truncated (%d of %d bytes)", base, n, hdr.Size)
		}
		got[base] = true
	}
	if !got["trivy.db"] || !got["metadata.json"] {
		return Metadata{}, fmt.Errorf("DB layer lacks trivy.db or metadata.json")
	}
	meta, err := ReadMetadata(tmp)
	if err != nil {
		return Metadata{}, err
	}
	if meta.Version != SchemaVersion {
		return Metadata{}, fmt.Errorf("downloaded DB has schema %d, want %d", meta.Version, SchemaVersion)
	}
	meta.DownloadedAt = now.UTC()
	if err := WriteMetadata(tmp, meta); err != nil {
		return Metadata{}, err
	}
	if err := install(tmp, dir); err != nil {
		return Metadata{}, err
	}
	return meta, nil
}
