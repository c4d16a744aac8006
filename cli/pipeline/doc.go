// Package pipeline is the CI job that the taskguard CLI (`taskguard ci`), the
// GitHub Action and the Jenkins stage share: scan an image for
// vulnerabilities and compliance issues, check a task definition, apply the
// gate's policy, and protect the task definition when the gate passes.
//
// It joins the scanners (which know nothing of policy) to the console's
// policy model; report writing stays in scanners/report.
package pipeline
