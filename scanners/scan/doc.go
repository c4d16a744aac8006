// Package scan runs a whole image scan (open the image, find its packages,
// match them against the vulnerability DB) and holds the resulting Report
// with its two built-in renderings: JSON (schema in docs/scan-json.md) and a
// table for terminals. Other report formats (JUnit, SARIF, Markdown) belong
// elsewhere and read the same Report.
package scan
