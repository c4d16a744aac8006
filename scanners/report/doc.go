// Package report is the CI report: vulnerability and compliance findings with
// the gate's verdict on each, and the writers that carry it to people and CI
// systems — JSON (versioned schema, docs/ci-report-json.md), JUnit XML, SARIF
// 2.1.0, Markdown (GitHub job summary) and a terminal table.
//
// Every writer has the same shape, Write(ctx, w, *Report) error, with its own
// small options where it needs them. The verdicts are decided elsewhere (the
// CI pipeline applies the policy); this package only writes them.
package report
