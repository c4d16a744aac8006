//go:build !linux

package inventory

// lowerPriority is a no-op where thread priorities are not set; the CPU
// budget still bounds the scan.
func lowerPriority() error { return nil }
