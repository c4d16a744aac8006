// Package image builds the taskguard defender container image with
// go-containerregistry, without Docker: one layer holding the static
// taskguard-defender binary at /var/lib/taskguard/defender inside a declared
// VOLUME /var/lib/taskguard, so that app containers reach it through
// volumesFrom. The build is reproducible: the same binary and options give the
// same digest (fixed timestamps, sorted entries, no host metadata).
package image
