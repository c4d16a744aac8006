// Package analyzer finds what is installed in an image: the OS release and
// the packages of the OS package managers and language ecosystems.
//
// Each analyzer lives in its own file (an ecosystem's lock file and
// installed-metadata analyzers share one: ruby.go, composer.go, cargo.go,
// dotnet.go, maven.go), declares which files it wants (Required, by path
// and file info) and a Version, and is listed in one table (analyzers in
// registry.go; the opt-in lock file and manifest analyzers in lockfiles). Run walks the flattened image once and
// hands each file only to the analyzers that asked for it, so a file's
// content is read at most once and only when some analyzer needs it.
//
// Language packages found in files that an OS package installed (per
// dpkg's file lists, apk's and rpm's databases) are dropped: the OS
// package's advisories cover them, and trivy does the same.
//
// Errors: a file an analyzer cannot parse is skipped with a warning naming
// the file (one broken package.json must not hide the rest of an image);
// errors reading the image itself abort the run. The package does not match
// vulnerabilities: see scanners/vuln.
package analyzer
