// Package image opens a container image from any source taskguard supports
// (a registry, a docker-archive tarball, an OCI layout directory or an
// unpacked root filesystem) and walks the files of its flattened filesystem.
//
// Layers are read top to bottom, once each, as streams: whiteouts and opaque
// directories of upper layers hide what lies below them, and a file's content
// is only read when the caller asks for it. WalkLayers reads several layers
// at once and keeps only what stays visible. Path tricks (entries that climb
// out with "..") are skipped with a warning, symbolic links are never
// followed, files above MaxFileSize are skipped with a warning; corrupt or
// truncated layers, and layers that unpack beyond MaxLayerSize (decompression
// bombs), end the walk with an error naming the layer. Cancelling the
// context stops a walk even inside one huge file. The package knows nothing about
// packages or vulnerabilities: see scanners/analyzer for that.
package image
