package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/taskguard/taskguard/internal/ocilimit"
	"github.com/taskguard/taskguard/scanners/layercache"
)

// Kind names where an image comes from.
type Kind string

// The sources an image can be read from.
const (
	KindRegistry Kind = "registry"
	KindTarball  Kind = "tarball"
	KindLayout   Kind = "oci-layout"
	KindRootFS   Kind = "rootfs"
)

// DefaultMaxFileSize is the largest file whose content a walk hands out when
// Options.MaxFileSize is zero. Larger files are skipped with a warning.
const DefaultMaxFileSize = 512 << 20

// Options choose how an image is opened.
type Options struct {
	// Kind forces the source; empty means: guess from the reference (an
	// existing file is a tarball, a directory with an oci-layout file is an
	// OCI layout, another directory is a root filesystem, else a registry).
	Kind Kind
	// Keychain resolves registry credentials; nil means authn.DefaultKeychain
	// (docker config and credential helpers).
	Keychain authn.Keychain
	// Transport is the HTTP transport for registry calls; nil means the default.
	Transport http.RoundTripper
	// Insecure allows plain HTTP to a registry that is not on loopback.
	Insecure bool
	// Platform picks the image from a multi-platform index (registry or OCI
	// layout); nil means linux/amd64.
	Platform *v1.Platform
	// MaxFileSize bounds the content of one file a walk reads into memory.
	MaxFileSize int64
	// MaxLayerSize bounds the uncompressed size of one layer; 0 means
	// DefaultMaxLayerSize.
	MaxLayerSize int64
	// Logger receives warnings about skipped entries; nil means slog.Default().
	Logger *slog.Logger
	// SkipDirs are directories (slash-separated, relative to the root, e.g.
	// "proc") whose subtrees a root filesystem walk does not enter; used to
	// inventory a running container's own "/" without /proc, /sys or /dev.
	SkipDirs []string
	// Cache keeps what analysers learnt from each layer between scans
	// (analyzer.Run uses it); nil means no layer cache.
	Cache *layercache.Cache
}

// Image is an opened image: either an OCI image (registry, tarball, layout)
// or a root filesystem directory.
type Image struct {
	// Name is what the user asked for (a reference or a path).
	Name string
	// Kind is where the image was read from.
	Kind      Kind
	digest    string
	digestErr error
	// digestDone is closed when the archive digest is known (or failed);
	// nil when Open knew it. Its hashing starts (startDigest) once the
	// walk has its layers running, or when Digest is asked first: no
	// goroutine runs before.
	digestDone chan struct{}
	digestOnce sync.Once
	// closed ends the archive digest's hashing (its reads of the archive
	// fail): Close.
	closed    chan struct{}
	closeOnce sync.Once
	// memoKey names the archive's digest in the layer cache; the digest is
	// remembered by the first Digest call, on its caller's goroutine, so
	// that nothing writes to the cache after the caller is done with the
	// image (a compliance check never asks for the digest).
	memoKey  string
	memoOnce sync.Once

	img v1.Image
	dir string
	// tarPath, tarOpen and tarLayers locate the layers of a docker
	// archive, read straight from the archive (ggcr would recompress
	// uncompressed ones).
	tarPath   string
	tarOpen   opener
	tarLayers []string
	max       int64
	maxLayer  int64
	logger    *slog.Logger
	skip      map[string]bool
	cache     *layercache.Cache
}

// ErrNotFound is returned when the reference names nothing that can be read.
var ErrNotFound = errors.New("image not found")

// Open opens the image named by ref.
func Open(ctx context.Context, ref string, opts Options) (*Image, error) {
	kind := opts.Kind
	if kind == "" {
		kind = guessKind(ref)
	}
	im := &Image{Name: ref, Kind: kind, max: opts.MaxFileSize, logger: opts.Logger, cache: opts.Cache}
	noteInflaterLogger(opts.Logger) // the first gzip layer read logs which inflater it goes through
	if im.max <= 0 {
		im.max = DefaultMaxFileSize
	}
	im.maxLayer = opts.MaxLayerSize
	im.closed = make(chan struct{})
	if im.logger == nil {
		im.logger = slog.Default()
	}
	im.logger = im.logger.With("component", "image", "image", ref)
	var err error
	switch kind {
	case KindRootFS:
		st, serr := os.Stat(ref)
		if serr != nil {
			return nil, fmt.Errorf("open rootfs %s: %w", ref, serr)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("open rootfs %s: not a directory", ref)
		}
		im.dir = ref
		im.skip = map[string]bool{}
		for _, d := range opts.SkipDirs {
			im.skip[strings.Trim(filepath.ToSlash(filepath.Clean(d)), "/")] = true
		}
		return im, nil
	case KindTarball:
		var open opener
		im.img, open, err = openTarball(ref, im.layerLimit(), im.closed)
		if err == nil {
			im.tarPath, im.tarOpen = ref, open
			im.tarLayers = archiveLayers(open)
		}
	case KindLayout:
		im.img, err = openLayout(ref, opts.Platform)
	case KindRegistry:
		im.img, err = openRemote(ctx, ref, opts)
	default:
		return nil, fmt.Errorf("open image %s: unknown source kind %q (want registry, tarball, oci-layout or rootfs)", ref, kind)
	}
	if err != nil {
		return nil, err
	}
	if kind != KindTarball { // checkArchive bounded a tarball's metadata
		if err := ocilimit.CheckManifest(im.img); err != nil {
			return nil, fmt.Errorf("open image %s: %w", ref, err)
		}
	}
	if err := checkPlatform(im.img, opts.Platform); err != nil {
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	if kind != KindTarball {
		d, err := im.img.Digest()
		if err != nil {
			return nil, fmt.Errorf("open image %s: digest: %w", ref, err)
		}
		im.digest = d.String()
		return im, nil
	}
	// A docker-archive's manifest digest needs a hash of every compressed
	// layer: computed beside the walk, which reads the same layers anyway.
	// With a layer cache, the digest of an archive file seen before (same
	// device, inode, size, modification and change times) is remembered,
	// so that a re-scan of the same file reads no layer at all.
	memoKey := archiveMemoKey(ref)
	if im.cache != nil && memoKey != "" {
		if b, ok, err := im.cache.Get(memoKey); err == nil && ok && strings.HasPrefix(string(b), "sha256:") {
			im.digest = string(b)
			return im, nil
		}
	}
	im.digestDone = make(chan struct{})
	im.memoKey = memoKey
	return im, nil
}

// ErrClosed is returned by Digest, and by a walk of a docker archive's
// layers through ggcr, after Close.
var ErrClosed = errors.New("image closed")

// Close ends the image's background work: the hashing of a docker
// archive's layers for its digest, if a walk started it and nobody asked
// for the digest, stops at its next read, and Close waits for it. A
// Digest after Close that was not computed yet returns ErrClosed. Close
// is safe to call more than once and on any image; callers defer it
// right after Open.
func (im *Image) Close() error {
	if im.closed != nil {
		im.closeOnce.Do(func() { close(im.closed) })
	}
	if im.digestDone != nil {
		// Settles the digest: with no hashing started, none starts.
		im.startDigest()
		<-im.digestDone
	}
	return nil
}

// isClosed reports whether Close was called.
func (im *Image) isClosed() bool {
	select {
	case <-im.closed:
		return true
	default:
		return false
	}
}

// LayerCache returns the layer cache the image was opened with, or nil.
func (im *Image) LayerCache() *layercache.Cache { return im.cache }

// MaxFileSize returns the largest file content a walk hands out: what is
// learnt from a layer depends on it.
func (im *Image) MaxFileSize() int64 { return im.max }

// Digest returns the image's manifest digest ("sha256:..."), empty for a root
// filesystem. For a tarball it is computed in the background from Open on,
// and Digest waits for it.
func (im *Image) Digest() (string, error) {
	if im.digestDone != nil {
		im.startDigest()
		<-im.digestDone
		if im.digestErr == nil && im.cache != nil && im.memoKey != "" {
			im.memoOnce.Do(func() {
				if err := im.cache.Put(im.memoKey, []byte(im.digest)); err != nil {
					im.logger.Warn("could not remember the archive's digest", "err", err)
				}
			})
		}
	}
	return im.digest, im.digestErr
}

// startDigest starts the archive digest's hashing in a goroutine (once),
// or settles it with ErrClosed after Close.
func (im *Image) startDigest() {
	if im.digestDone == nil {
		return
	}
	im.digestOnce.Do(func() {
		if im.isClosed() {
			im.digestErr = fmt.Errorf("image %s: digest: %w", im.Name, ErrClosed)
			close(im.digestDone)
			return
		}
		// Started after the walk's layers, so that the base layer's
		// inflater is running before this goroutine competes for a core.
		go im.hashArchive()
	})
}

// hashArchive computes a docker archive's manifest digest (a SHA-256 of
// every compressed layer, through ggcr).
func (im *Image) hashArchive() {
	defer close(im.digestDone)
	d, err := im.img.Digest()
	if err != nil {
		im.digestErr = fmt.Errorf("image %s: digest: %w", im.Name, err)
		return
	}
	im.digest = d.String()
}

// LocalPath reports whether ref can only be a local path, never a registry
// reference: it starts with "/", "." or "~", or it has no ":" (no tag,
// no port) and ends like an archive (.tar, .tar.gz, .tgz, .tar.zst).
func LocalPath(ref string) bool {
	for _, p := range []string{"/", ".", "~"} {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	if strings.Contains(ref, ":") {
		return false
	}
	for _, s := range []string{".tar", ".tar.gz", ".tgz", ".tar.zst"} {
		if strings.HasSuffix(strings.ToLower(ref), s) {
			return true
		}
	}
	return false
}

// CheckSource returns a clear error when ref is a local source (kind
// tarball, OCI layout or rootfs, or a path by LocalPath when kind is
// empty) that does not exist, so that a command can say so before it
// touches the vulnerability DB or a registry.
func CheckSource(ref string, kind Kind) error {
	switch kind {
	case KindRegistry:
		return nil
	case "":
		if !LocalPath(ref) {
			return nil
		}
	}
	if _, err := os.Stat(ref); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("image %s: no such file or directory (a local image path; a registry reference looks like registry.example.com/app:1.0): %w", ref, ErrNotFound)
		}
		return fmt.Errorf("image %s: %w", ref, err)
	}
	return nil
}

func guessKind(ref string) Kind {
	st, err := os.Stat(ref)
	switch {
	case err != nil && LocalPath(ref):
		// Reported by openTarball as a missing file, not a registry pull
		// of "./nope.tar".
		return KindTarball
	case err != nil:
		return KindRegistry
	case !st.IsDir():
		return KindTarball
	}
	if _, err := os.Stat(filepath.Join(ref, "oci-layout")); err == nil {
		return KindLayout
	}
	return KindRootFS
}

// openTarball opens a docker archive, plain or compressed as a whole
// (docker save | gzip), and returns the image and an opener of the plain
// archive.
func openTarball(path string, max int64, closed <-chan struct{}) (v1.Image, opener, error) {
	if err := CheckSource(path, KindTarball); err != nil {
		return nil, nil, err
	}
	open := fileOpener(path)
	compressed, err := compressedArchive(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open tarball %s: %w", path, err)
	}
	if compressed {
		if open, err = unpackArchive(path, max); err != nil {
			return nil, nil, fmt.Errorf("open tarball %s: %w", path, err)
		}
	}
	if err := checkArchive(open); err != nil {
		return nil, nil, fmt.Errorf("open tarball %s: %w", path, err)
	}
	// ggcr reads the archive through this opener for the manifest
	// digest, a SHA-256 of every compressed layer beside the walk: it
	// yields its processor at every read, so that it never holds a core
	// the layers' inflaters or the walk are waiting for.
	// Its reads fail once the image is closed.
	img, err := tarball.Image(tarball.Opener(closingOpener(yieldingOpener(open), closed)), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open tarball %s (want a docker-archive made by docker save or crane pull, plain or gzip/zstd-compressed): %w", path, err)
	}
	return img, open, nil
}

// closingOpener is open whose readers fail with ErrClosed once closed is.
func closingOpener(open opener, closed <-chan struct{}) opener {
	return func() (io.ReadCloser, error) {
		select {
		case <-closed:
			return nil, ErrClosed
		default:
		}
		rc, err := open()
		if err != nil {
			return nil, err
		}
		c := &closingReader{rc, closed}
		if s, ok := rc.(io.Seeker); ok {
			return &closingSeeker{c, s}, nil
		}
		return c, nil
	}
}

type closingReader struct {
	io.ReadCloser
	closed <-chan struct{}
}

func (c *closingReader) Read(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, ErrClosed
	default:
	}
	return c.ReadCloser.Read(p)
}

type closingSeeker struct {
	*closingReader
	s io.Seeker
}

func (c *closingSeeker) Seek(off int64, whence int) (int64, error) { return c.s.Seek(off, whence) }

func openLayout(dir string, platform *v1.Platform) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", dir, err)
	}
	if err := checkLayoutFile(filepath.Join(dir, "index.json"), "index"); err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: index: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: index manifest: %w", dir, err)
	}
	for _, desc := range m.Manifests {
		if desc.MediaType.IsImage() && (platform == nil || desc.Platform == nil || desc.Platform.Satisfies(*platform)) {
			if err := checkLayoutFile(layoutBlob(dir, desc.Digest), "manifest"); err != nil {
				return nil, fmt.Errorf("open OCI layout %s: image %s: %w", dir, desc.Digest, err)
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("open OCI layout %s: image %s: %w", dir, desc.Digest, err)
			}
			return img, nil
		}
	}
	return nil, fmt.Errorf("open OCI layout %s: %w: the index lists no image manifest (for the platform asked for)", dir, ErrNotFound)
}

func openRemote(ctx context.Context, ref string, opts Options) (v1.Image, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q (want e.g. registry.example.com/app:1.0, a tarball or a directory): %w", ref, err)
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	ropts = append(ropts, remote.WithTransport(ocilimit.Transport(opts.Transport)))
	if opts.Platform != nil {
		ropts = append(ropts, remote.WithPlatform(*opts.Platform))
	}
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("fetch image %s: %w", r, err)
	}
	return img, nil
}

// Config returns the image's config file, or nil for a root filesystem.
func (im *Image) Config() (*v1.ConfigFile, error) {
	if im.img == nil {
		return nil, nil
	}
	cf, err := im.img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", im.Name, err)
	}
	return cf, nil
}

// File is one regular file of the flattened filesystem, as a walk sees it.
type File struct {
	// Path is slash-separated and relative to the root ("etc/os-release").
	Path string
	// Info describes the file (size, mode).
	Info fs.FileInfo
	// Layer is the digest of the layer the file comes from (diff ID), empty
	// for a root filesystem.
	Layer string

	open func() (io.Reader, error)
	max  int64
}

// ErrTooLarge is returned by File.ReadAll for files above the size limit.
var ErrTooLarge = errors.New("file too large")

// ReadAll reads the file's content. It may be called once, inside the walk
// callback that received the file.
func (f File) ReadAll() ([]byte, error) {
	if f.Info.Size() > f.max {
		return nil, fmt.Errorf("read %s: %w: %d bytes, limit %d", f.Path, ErrTooLarge, f.Info.Size(), f.max)
	}
	r, err := f.open()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	b, err := readSized(io.LimitReader(r, f.max+1), f.Info.Size())
	if err != nil {
		if f.Layer != "" {
			return nil, fmt.Errorf("layer %s: read %s (%s): %w", f.Layer, f.Path, readFailure(err), err)
		}
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	if int64(len(b)) > f.max {
		return nil, fmt.Errorf("read %s: %w: more than %d bytes", f.Path, ErrTooLarge, f.max)
	}
	return b, nil
}

// readSizedMax bounds readSized's first buffer.
const readSizedMax = 64 << 20

// readSized is io.ReadAll for a stream whose size is known (a tar
// entry's): one buffer of that size plus one byte, where io.ReadAll grows
// from 512 bytes and copies about twice the content (the analyzers read
// ~35 MiB of executables and package lists in a cold scan). A stream
// longer than size (a file that grew) is still read whole. At most
// readSizedMax is taken on trust from size: a tar header that lies about
// a file's size in a truncated layer costs no more than that.
func readSized(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		size = 0
	}
	size = min(size, readSizedMax)
	b := make([]byte, 0, size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// WalkFunc is called for each regular file of the flattened filesystem. An
// error it returns stops the walk and is returned by Walk.
type WalkFunc func(f File) error

// Walk calls fn for every regular file visible in the flattened image, in no
// particular order. Symbolic links, hard links, directories and devices are
// not passed to fn.
func (im *Image) Walk(ctx context.Context, fn WalkFunc) error {
	if im.img == nil {
		return walkDir(ctx, im.dir, im.max, im.skip, im.logger, fn)
	}
	layers, err := im.img.Layers()
	if err != nil {
		return fmt.Errorf("image %s: layers: %w", im.Name, err)
	}
	// Diff IDs come from the config: asking a layer for its diff ID can
	// mean decompressing it once more just to hash it.
	var diffIDs []v1.Hash
	if cf, err := im.img.ConfigFile(); err == nil && cf != nil && len(cf.RootFS.DiffIDs) == len(layers) {
		diffIDs = cf.RootFS.DiffIDs
	}
	fl := newFlattener(im.max, im.logger)
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		var id v1.Hash
		if diffIDs != nil {
			id = diffIDs[i]
		} else if id, err = l.DiffID(); err != nil {
			return fmt.Errorf("image %s: layer %d: diff id: %w", im.Name, i, err)
		}
		open := l.Compressed
		if len(im.tarLayers) == len(layers) {
			open = func() (io.ReadCloser, error) { return openArchiveEntry(im.tarOpen, im.tarPath, im.tarLayers[i]) }
		}
		if err := walkLayer(ctx, fl, id.String(), open, im.layerLimit(), fn); err != nil {
			return fmt.Errorf("image %s: %w", im.Name, err)
		}
	}
	return nil
}

// walkLayer streams one layer through the flattener. The uncompressed
// stream is read to its end (drainLayer: a gzip trailer is checked
// there), then the compressed blob, so that sources which verify digests
// while reading can.
func walkLayer(ctx context.Context, fl *flattener, id string, open func() (io.ReadCloser, error), maxLayer int64, fn WalkFunc) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	defer rc.Close()
	r, err := decompress(rc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	defer r.Close()
	guarded := newGuardReader(ctx, r, maxLayer)
	if err := fl.layer(ctx, id, guarded, fn); err != nil {
		return err
	}
	if err := drainLayer(id, guarded); err != nil {
		return err
	}
	// Stop the read-ahead before reading the blob's rest ourselves.
	if err := r.Close(); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("layer %s: read to end (%s): %w", id, readFailure(err), err)
	}
	if err := rc.Close(); err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	return nil
}

// ErrPlatform is returned when a single-platform image is not of the
// platform asked for.
var ErrPlatform = errors.New("wrong platform")

// checkPlatform compares a single-platform image's config with want. An
// index was already resolved to want; a config without OS or architecture
// passes.
func checkPlatform(img v1.Image, want *v1.Platform) error {
	if want == nil {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cf.OS == "" || cf.Architecture == "" {
		return nil
	}
	got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	if !got.Satisfies(*want) {
		return fmt.Errorf("%w: the image is %s, not %s", ErrPlatform, got.String(), want.String())
	}
	return nil
}

// layerLimit is the uncompressed size limit of one layer.
func (im *Image) layerLimit() int64 {
	if im.maxLayer > 0 {
		return im.maxLayer
	}
	return DefaultMaxLayerSize
}
