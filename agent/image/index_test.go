package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tinyELF is the smallest static ELF64 executable header debug/elf reads:
// one PT_LOAD segment, no interpreter, for machine m. It never runs; the
// image only carries it.
func tinyELF(m elf.Machine) []byte {
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: uint32(elf.EV_CURRENT),
		Entry: 0x400078, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	_ = binary.Write(&b, binary.LittleEndian, hdr)
	_ = binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000,
		Filesz: 128, Memsz: 128, Align: 0x1000,
	})
	b.Write(make([]byte, 128-b.Len()))
	return b.Bytes()
}

func TestBinaryArch(t *testing.T) {
	for m, want := range map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"} {
		got, err := BinaryArch(tinyELF(m))
		if err != nil || got != want {
			t.Errorf("BinaryArch(%s) = %q, %v; want %q", m, got, err, want)
		}
	}
	if _, err := BinaryArch([]byte("#!/bin/sh\n")); err == nil {
		t.Error("a script has an architecture")
	}
	if _, err := BinaryArch(tinyELF(elf.EM_MIPS)); err == nil || !strings.Contains(err.Error(), "does not support") {
		t.Errorf("MIPS: %v", err)
	}
	// The image refuses a binary of another architecture than it declares.
	if _, err := Build(Options{Binary: tinyELF(elf.EM_AARCH64), Arch: "amd64"}); err == nil || !strings.Contains(err.Error(), "linux/arm64, not linux/amd64") {
		t.Errorf("arm64 binary in an amd64 image: %v", err)
	}
}

// TestIndexReproducible: an index of linux/amd64 and linux/arm64 images has
// one manifest per platform with the platform set, and the same binaries
// give the same index digest whatever their order.
func TestIndexReproducible(t *testing.T) {
	build := func(order ...elf.Machine) v1.ImageIndex {
		var imgs []v1.Image
		for _, m := range order {
			arch, _ := BinaryArch(tinyELF(m))
			img, err := Build(Options{Binary: tinyELF(m), Arch: arch, Version: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, img)
		}
		idx, err := BuildIndex(imgs)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	a := build(elf.EM_X86_64, elf.EM_AARCH64)
	b := build(elf.EM_AARCH64, elf.EM_X86_64)
	da, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if db, _ := b.Digest(); da != db {
		t.Fatalf("the same two images gave index digests %s and %s", da, db)
	}
	if mt, _ := a.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	m, err := a.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, d := range m.Manifests {
		plats = append(plats, d.Platform.String())
		img, err := a.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("manifest for %s holds an image for %s/%s", d.Platform, cf.OS, cf.Architecture)
		}
	}
	if strings.Join(plats, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms %v", plats)
	}
	if _, err := BuildIndex([]v1.Image{mustBuild(t, elf.EM_X86_64), mustBuild(t, elf.EM_X86_64)}); err == nil {
		t.Error("an index with two amd64 images was built")
	}
}

func mustBuild(t *testing.T, m elf.Machine) v1.Image {
	t.Helper()
	arch, _ := BinaryArch(tinyELF(m))
	img, err := Build(Options{Binary: tinyELF(m), Arch: arch})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestFindSourceTree(t *testing.T) {
	root, ok := FindSourceTree(".")
	if !ok {
		t.Fatal("this package's folder is not found inside the source tree")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "taskguard-defender", "main.go")); err != nil {
		t.Fatalf("source tree %s: %v", root, err)
	}
	if got, ok := FindSourceTree(filepath.Join(root, "agent", "image")); !ok || got != root {
		t.Errorf("from a subfolder: %q %v, want %s", got, ok, root)
	}
	other := t.TempDir()
	_ = os.MkdirAll(filepath.Join(other, "cmd", "taskguard-defender"), 0o755)
	_ = os.WriteFile(filepath.Join(other, "cmd", "taskguard-defender", "main.go"), []byte("package main\n"), 0o644)
	_ = os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/fork\n"), 0o644)
	if got, ok := FindSourceTree(other); ok {
		t.Errorf("another module %s taken for the source tree", got)
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{"linux/amd64": "amd64", "linux/arm64": "arm64", "windows/amd64": "", "amd64": "", "linux/": "", "linux/arm64/v8": ""} {
		got, err := ParsePlatform(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("ParsePlatform(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
