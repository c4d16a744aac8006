//go:build !unix

package localrun

// hardLimits returns the limits podman's own Linux machine allows where this
// process has no rlimits (Windows: podman runs the task in its Linux VM).
func hardLimits() (nofile, nproc uint64, err error) {
	return 1048576, maxNproc, nil
}
