// Command mktree writes a container-like root filesystem of N files for the
// inventory benchmarks: an os-release, a dpkg status with two packages and
// N-2 small files in directories of 1000.
//
//	go run ./bench/inventory/mktree DIR N
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

const dpkgStatus = "Package: openssl\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u2\n\n" +
	"Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\n"

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mktree DIR N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 2 {
		fmt.Fprintln(os.Stderr, "mktree: N must be a number of at least 2")
		os.Exit(2)
	}
	if err := write(os.Args[1], n); err != nil {
		fmt.Fprintln(os.Stderr, "mktree:", err)
		os.Exit(1)
	}
}

func write(root string, n int) error {
	files := map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "var/lib/dpkg/status": dpkgStatus}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < n-2; i++ {
		dir := filepath.Join(root, "srv", strconv.Itoa(i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".txt"), []byte("x"), 0o644); err != nil {
			return err
		}
	}
	return nil
}
