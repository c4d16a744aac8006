package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// walkDir walks a root filesystem directory. Symbolic links are not
// followed; directories in skip (relative, slash-separated) and mount
// points of kernel filesystems (proc, sysfs, cgroup, ...: specialMount)
// are not entered.
func walkDir(ctx context.Context, root string, max int64, skip map[string]bool, logger *slog.Logger, fn WalkFunc) error {
	rootDev := deviceOf(root)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				logger.Warn("skipping unreadable path", "path", p, "err", err)
				return nil
			}
			if errors.Is(err, fs.ErrNotExist) && p != root {
				// Removed while the walk ran (a live root filesystem).
				return nil
			}
			return fmt.Errorf("walk rootfs %s: %w", root, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() && len(skip) > 0 {
			if rel, err := filepath.Rel(root, p); err == nil && skip[filepath.ToSlash(rel)] {
				return filepath.SkipDir
			}
		}
		if d.IsDir() && p != root {
			if fsName, ok := specialMount(p, rootDev); ok {
				logger.Debug("not entering a kernel filesystem", "path", p, "fs", fsName)
				return filepath.SkipDir
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("walk rootfs %s: %w", root, err)
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("walk rootfs %s: %w", root, err)
		}
		file := File{
			Path: filepath.ToSlash(rel),
			Info: info,
			open: func() (io.Reader, error) { return os.Open(p) },
			max:  max,
		}
		if err := fn(file); err != nil {
			if errors.Is(err, ErrTooLarge) {
				logger.Warn("skipping file above the size limit", "path", rel, "size", info.Size())
				return nil
			}
			return err
		}
		return nil
	})
}
