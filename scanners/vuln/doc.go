// Package vuln matches the packages an analyzer found against the
// vulnerability database. OS packages are looked up in their distribution's
// bucket ("debian 12", "alpine 3.19") by source package; language packages
// in every bucket of their ecosystem ("go::...", "npm::..."). Versions are
// compared with the ecosystem's own rules, chosen from literal tables
// (osComparers, langComparers).
//
// It does not decide whether a finding blocks a build: that is the gate's job.
package vuln
