// Package taskimages is the console's view of the images running in
// protected tasks: it matches the inventories defenders send against the
// console's own vulnerability DB (the scanners' trivy-db code) each time they
// are read, so a DB update shows new vulnerabilities without rescanning, and
// filters them by task family, image, severity, CVE and fix availability.
// It keeps the DB current on a schedule (Updater). It does not store
// anything: package store does.
package taskimages
