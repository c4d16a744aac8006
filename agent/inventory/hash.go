package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// packageDBs are the files whose content decides the OS packages and OS
// (globs relative to the root).
var packageDBs = []string{
	"etc/os-release", "usr/lib/os-release", "etc/debian_version",
	"var/lib/dpkg/status", "var/lib/dpkg/status.d/*",
	"lib/apk/db/installed",
	"var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages", "usr/lib/sysimage/rpm/Packages.db", "usr/lib/sysimage/rpm/rpmdb.sqlite",
}

// PackageDBHash hashes the package databases and OS files under root
// ("sha256:..."): a scan is skipped when it has not changed. A file that is
// absent counts as absent; one that cannot be read is an error.
func PackageDBHash(root string) (string, error) {
	h := sha256.New()
	for _, pattern := range packageDBs {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return "", fmt.Errorf("package db hash: %w", err)
		}
		sort.Strings(matches)
		for _, m := range matches {
			if err := hashFile(h, root, m); err != nil {
				return "", err
			}
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h io.Writer, root, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("package db hash: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	r, _ := filepath.Rel(root, path)
	fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(r), st.Size())
	if _, err := io.Copy(h, io.LimitReader(f, DefaultMaxFileSize)); err != nil {
		return fmt.Errorf("package db hash: read %s: %w", path, err)
	}
	return nil
}
