// Command mkimage writes a docker-archive tarball whose layers are the given
// directories, bottom first: the benchmark's test image.
//
//	go run ./bench/scan/mkimage -o image.tar rootfs/ app/
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	out := flag.String("o", "image.tar", "output docker-archive tarball")
	ref := flag.String("ref", "taskguard.local/bench:1", "image name recorded in the tarball")
	flag.Parse()
	if err := run(*out, *ref, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(2)
	}
}

func run(out, ref string, dirs []string) error {
	if len(dirs) == 0 {
		return fmt.Errorf("name at least one directory")
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	var layers []v1.Layer
	for _, d := range dirs {
		l, err := dirLayer(d)
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, r, img)
}

// dirLayer packs dir into a temporary tar file and returns it as a layer.
func dirLayer(dir string) (v1.Layer, error) {
	f, err := os.CreateTemp("", "mkimage-*.tar")
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular(), info.IsDir():
		default:
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(f.Name())
}
