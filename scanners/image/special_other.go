//go:build !linux

package image

func deviceOf(string) uint64 { return 0 }

func specialMount(string, uint64) (string, bool) { return "", false }

// archiveMemoKey is "" where the file's change time is not known: the
// archive's digest is computed every time.
func archiveMemoKey(string) string { return "" }
