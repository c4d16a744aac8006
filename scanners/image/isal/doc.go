// Package isal inflates gzip image layers with ISA-L's igzip (Intel's
// Intelligent Storage Acceleration Library), loaded at run time from
// libisal.so.2 (Debian/Ubuntu package libisal2) with purego: no cgo at
// build time, and nothing needed at run time. Importing the package
// registers the inflater with scanners/image (image.RegisterGzipInflater);
// the library is opened when the first gzip layer is read. When it is absent, fails to
// load, or fails its self-test, layers go through the pure-Go inflater.
// On ISA-L, a cold scan of an image with a large gzip base layer takes
// about half the time.
//
// The environment variable TASKGUARD_ISAL_LIBRARY names the library to load
// (a soname or a path; default libisal.so.2); "off" keeps the Go inflater.
//
// Only linux/amd64 and linux/arm64 are supported; elsewhere, and in a build
// with the nodlopen tag, the package is empty. Importing it makes a
// CGO_ENABLED=0 binary dynamically linked against glibc (purego's dlopen),
// so the defender, which must stay static, does not import it.
package isal
