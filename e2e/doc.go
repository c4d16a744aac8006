// Package e2e holds taskguard's end-to-end test: the seeds' sample task,
// protected through a real taskguard-console, run with "taskguard task
// run-local" in a Podman pod with the defender image that "taskguard defender
// image" builds, against DNS and web servers the test runs. It needs root,
// Podman, runc and busybox-static, and skips with a message elsewhere. See
// README.md.
package e2e
