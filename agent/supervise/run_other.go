//go:build !(linux && (amd64 || arm64))

package supervise

// Run reports ErrUnsupported: supervision needs Linux on amd64 or arm64.
func Run(cfg Config) (Status, error) { return Status{}, ErrUnsupported }
