// Package compliance holds taskguard's compliance checks: each has a stable ID,
// a title, a severity and a remediation, and produces findings for one target
// (a task definition's container, an image). Checks register in a table per
// family; the gate, not this package, decides what a finding blocks.
//
// This package reads the task definition JSON itself (only the fields its
// checks need) so that scanners never import the console.
package compliance
