// Package action is the GitHub Action: it reads the step's inputs, runs the
// taskguard pipeline (scan, gate, reports, task protection) and writes the
// step's outputs, job summary and annotations through go-githubactions.
//
// It is built into the taskguard-action program that action.yml runs.
package action
