// Package testimage builds tiny container images for tests with
// go-containerregistry: Debian's busybox-static with every applet linked
// under /bin, optionally host binaries with their shared libraries (dash,
// coreutils), and files the test adds. No registry or Docker is needed.
package testimage
