// Package scanners holds taskguard's image scanning: image sources, OS and
// language package analyzers, vulnerability matching on trivy-db, and
// compliance checks. It never imports the console, agent or action code.
package scanners
