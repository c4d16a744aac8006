// Command mkimage writes a docker-archive tarball whose layers are the given
// directories, bottom first: the benchmark's test image.
//
//	go run ./bench/scan/mkimage -o image.tar rootfs/ app/
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/taskguard/taskguard/scanners/scantest"

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
		l, err := scantest.PackDir(d, "")
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
