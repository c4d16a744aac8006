//go:build !linux

package image

func deviceOf(string) uint64 { return 0 }

func specialMount(string, uint64) (string, bool) { return "", false }
