//go:build isal && cgo

package image

const isalBuild = true
