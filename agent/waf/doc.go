// Package waf is the defender's CNAF: a reverse proxy that listens on a WAF
// rule's external port, inspects every request with Coraza and the embedded
// OWASP Core Rule Set, and forwards clean traffic to 127.0.0.1:appPort.
//
// Each policy.Protection maps to CRS rule families (see Families); only the
// families a rule enables are loaded, and only the request phases run, which is
// where most of the speed over a plain Coraza+CRS deployment comes from.
// Effects are per protection: alert forwards and audits, prevent answers with
// a block page carrying an event ID and audits. Exceptions drop matches per
// path glob and parameter.
//
// The package does not listen by itself on policy changes and does not ship
// audits: the sidecar creates a Proxy per rule with New, calls Serve with its
// listener, swaps rules with SetRule and receives audits through WithAuditSink.
package waf
