package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Volume is the directory declared as a VOLUME; app containers mount it
	// with volumesFrom.
	Volume = "/var/lib/taskguard"
	// BinaryPath is where the defender binary lives inside the image.
	BinaryPath = Volume + "/defender"
	// DefaultUser is the non-root user the sidecar runs as (the distroless
	// "nonroot" IDs). The volume directory is owned by it so that the sidecar
	// can create its socket and state there.
	DefaultUser = "65532:65532"
	// LabelVersion and LabelSource are the OCI labels the image carries.
	LabelVersion = "org.opencontainers.image.version"
	LabelSource  = "org.opencontainers.image.source"
	// DefaultSource is the value of LabelSource when Options.Source is empty.
	DefaultSource = "https://github.com/taskguard/taskguard"
)

// Epoch is the timestamp of every file and of the image config: a fixed
// instant, so that builds are reproducible.
var Epoch = time.Unix(0, 0).UTC()

// Options describe the image to build.
type Options struct {
	// Binary is the static taskguard-defender executable (its bytes).
	Binary []byte
	// Version goes to the version label; empty means "devel".
	Version string
	// Source goes to the source label; empty means DefaultSource.
	Source string
	// User is "uid:gid" for the sidecar; empty means DefaultUser, "0:0" root.
	User string
	// Arch is the image architecture; empty means runtime.GOARCH.
	Arch string
}

// Build returns the defender image.
func Build(opts Options) (v1.Image, error) {
	if len(opts.Binary) == 0 {
		return nil, errors.New("defender image: the defender binary is empty")
	}
	arch := opts.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	if !isStaticELF(opts.Binary) {
		return nil, errors.New("defender image: the binary is not a static ELF executable (build it with CGO_ENABLED=0)")
	}
	if got, err := BinaryArch(opts.Binary); err != nil {
		return nil, fmt.Errorf("defender image: %w", err)
	} else if got != arch {
		return nil, fmt.Errorf("defender image: the binary is for linux/%s, not linux/%s", got, arch)
	}
	user := opts.User
	if user == "" {
		user = DefaultUser
	}
	uid, gid, err := parseUser(user)
	if err != nil {
		return nil, err
	}
	layerTar, err := layerBytes(opts.Binary, uid, gid)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("defender image: layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: Epoch},
			CreatedBy: "taskguard defender image",
			Comment:   "static taskguard-defender at " + BinaryPath,
		},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, fmt.Errorf("defender image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("defender image: config: %w", err)
	}
	cf = cf.DeepCopy()
	version := opts.Version
	if version == "" {
		version = "devel"
	}
	source := opts.Source
	if source == "" {
		source = DefaultSource
	}
	cf.Architecture = arch
	cf.OS = "linux"
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Entrypoint = []string{BinaryPath, "sidecar"}
	cf.Config.Cmd = nil
	cf.Config.User = user
	cf.Config.WorkingDir = Volume
	cf.Config.Volumes = map[string]struct{}{Volume: {}}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Labels = map[string]string{LabelVersion: version, LabelSource: source}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("defender image: config: %w", err)
	}
	return img, nil
}

// layerBytes writes the one layer: the directories down to the volume (the
// volume owned by uid:gid), a sticky /tmp, and the binary, sorted, with fixed
// times.
func layerBytes(binary []byte, uid, gid int) ([]byte, error) {
	type entry struct {
		hdr  tar.Header
		body []byte
	}
	entries := []entry{
		// A writable /tmp: Go's os.TempDir, and Coraza checks it at start.
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "var/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/taskguard/", Mode: 0o755, Uid: uid, Gid: gid}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/taskguard/defender", Mode: 0o755, Size: int64(len(binary))}, body: binary},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime, h.AccessTime, h.ChangeTime = Epoch, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("defender image: layer %s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("defender image: layer %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("defender image: layer: %w", err)
	}
	return buf.Bytes(), nil
}

func parseUser(s string) (uid, gid int, err error) {
	if _, err := fmt.Sscanf(s, "%d:%d", &uid, &gid); err != nil || uid < 0 || gid < 0 || fmt.Sprintf("%d:%d", uid, gid) != s {
		return 0, 0, fmt.Errorf("defender image: user %q: want numeric uid:gid such as %s", s, DefaultUser)
	}
	return uid, gid, nil
}

// isStaticELF reports whether b is an ELF executable with no program
// interpreter (PT_INTERP), i.e. one that runs in an image with no libc.
func isStaticELF(b []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return false
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// BuildBinary compiles cmd/taskguard-defender for linux/arch (empty: this
// machine's) from the module at moduleDir with CGO_ENABLED=0 and -trimpath
// (so the bytes do not depend on where the source lives) and returns the
// binary. moduleDir must be a taskguard source tree (IsSourceTree).
func BuildBinary(ctx context.Context, moduleDir, arch string) ([]byte, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	dir, err := os.MkdirTemp("", "taskguard-defender-build-")
	if err != nil {
		return nil, fmt.Errorf("build defender: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "taskguard-defender")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/taskguard-defender")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build defender for linux/%s in %s: %w: %s", arch, moduleDir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("build defender: %w", err)
	}
	return b, nil
}
