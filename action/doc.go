// Package action is the GitHub Action: it reads the step's inputs, runs the
// taskguard pipeline (pipeline.RunJob: scan, gate, reports, task protection)
// with typed options — credentials included, never through the environment
// or a command line — and writes the step's outputs, job summary and
// annotations through go-githubactions, whose panics on a failed write
// become errors that name what could not be written.
//
// It is built into the taskguard-action program that action.yml runs;
// action/install.sh installs that program from a release, checksum-verified,
// or builds it from source for a ref that has no release.
package action
