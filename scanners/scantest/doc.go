// Package scantest builds real test material for the scanner's tests: Go
// binaries with chosen (known-vulnerable) module versions, Debian root
// filesystems made by debootstrap (cached between runs), and image layers
// from directories. It is imported only by tests.
package scantest
