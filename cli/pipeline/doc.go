// Package pipeline is the CI job that the taskguard CLI (`taskguard ci`), the
// GitHub Action and the Jenkins stage share: scan an image for
// vulnerabilities and compliance issues, check a task definition, apply the
// gate's policy, and protect the task definition when the gate passes.
//
// Run is the run itself; RunJob wraps it for callers that are not a command
// line (the GitHub Action): it loads the policy (a file, the console's CI
// rules, or the embedded default) and the ignore file, updates and opens the
// vulnerability DB, writes every report file — also when the protect fails —
// and publishes the results to the console, all from typed options.
//
// It joins the scanners (which know nothing of policy) to the console's
// policy model; report writing stays in scanners/report.
package pipeline
