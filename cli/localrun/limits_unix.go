//go:build unix

package localrun

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hardLimits returns this process's hard limits of open files and processes.
func hardLimits() (nofile, nproc uint64, err error) {
	var nf, np unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nf); err != nil {
		return 0, 0, fmt.Errorf("rlimit nofile: %w", err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &np); err != nil {
		return 0, 0, fmt.Errorf("rlimit nproc: %w", err)
	}
	return uint64(nf.Max), uint64(np.Max), nil
}
