package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ModulePath is the taskguard module's import path, which a source tree's
// go.mod declares.
const ModulePath = "github.com/taskguard/taskguard"

// Platforms are the platforms the defender image is built for from source
// by default: Fargate runs both.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// elfArch maps an ELF machine to a Go architecture name.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_RISCV:   "riscv64",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
}

// BinaryArch returns the Go architecture of a Linux ELF executable.
func BinaryArch(b []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("the binary is not an ELF executable: %w", err)
	}
	defer f.Close()
	arch, ok := elfArch[f.Machine]
	if !ok {
		return "", fmt.Errorf("the binary is for %s, which the defender image does not support", f.Machine)
	}
	return arch, nil
}

// FindSourceTree returns the taskguard source tree that holds dir (dir or
// one of its parents with the module's go.mod and cmd/taskguard-defender),
// from which the binary can be built.
func FindSourceTree(dir string) (string, bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for {
		if isSourceTree(dir) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func isSourceTree(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "cmd", "taskguard-defender", "main.go")); err != nil {
		return false
	}
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(mod), `"`) == ModulePath
		}
	}
	return false
}

// ParsePlatform splits "linux/ARCH" and refuses other operating systems.
func ParsePlatform(p string) (arch string, err error) {
	osName, arch, ok := strings.Cut(p, "/")
	if !ok || osName != "linux" || arch == "" || strings.Contains(arch, "/") {
		return "", fmt.Errorf("platform %q: want linux/ARCH, such as linux/amd64 or linux/arm64", p)
	}
	return arch, nil
}

// BuildIndex returns an OCI image index of the images, one per platform,
// in the order of their architectures (so the same images give the same
// digest). Each image's config names its architecture.
func BuildIndex(images []v1.Image) (v1.ImageIndex, error) {
	if len(images) == 0 {
		return nil, errors.New("defender image: an index needs at least one image")
	}
	type entry struct {
		arch string
		img  v1.Image
	}
	entries := make([]entry, 0, len(images))
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("defender image index: %w", err)
		}
		entries = append(entries, entry{cf.Architecture, img})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.arch, b.arch) })
	adds := make([]mutate.IndexAddendum, 0, len(entries))
	for i, e := range entries {
		if i > 0 && entries[i-1].arch == e.arch {
			return nil, fmt.Errorf("defender image index: two images for linux/%s", e.arch)
		}
		adds = append(adds, mutate.IndexAddendum{Add: e.img, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Platform:  &v1.Platform{OS: "linux", Architecture: e.arch},
		}})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...), nil
}
