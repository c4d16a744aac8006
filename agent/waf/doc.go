// Package waf is the defender's CNAF: a reverse proxy that listens on a WAF
// rule's external port, inspects every request with Coraza and the embedded
// OWASP Core Rule Set, and forwards clean traffic to 127.0.0.1:appPort.
//
// The request path, top to bottom (Proxy.ServeHTTP): read the body, whole,
// up to the rule's bodyLimit (default 12.5 MiB, Coraza's own) under a
// deadline (within a per-proxy memory budget for bodies in flight); a larger
// body, or one with more than 10,000 arguments (Coraza drops the rest), is
// decided by the rule's oversizeEffect (prevent:
// 413 and an audit; alert: its prefix is inspected, a parse error caused by
// the cut is not a protocol violation, the body is forwarded and the audit
// says it was not inspected beyond the limit) → run CRS's request phases → decide per protection (alert
// forwards and audits, prevent answers with a block page carrying an event ID
// and audits) → httputil.ReverseProxy to the app, which handles WebSocket
// upgrades after the inspected handshake, hop-by-hop headers and
// X-Forwarded-*. While the app's port refuses connections (the app is
// starting), a request waits for it, bounded (WithAppWait), then gets 503
// with Retry-After, never 502. Serve speaks HTTP/1.1 and cleartext HTTP/2 (h2c).
//
// Each policy.Protection maps to CRS rule families (Families). Only the
// enabled families are loaded, rules above the paranoia level are removed at
// load time, the setup's constant TX values are set by one action, responses
// are not inspected, and @rx runs on RE2 with per-pattern memoization
// (rx.go); the corpus tests show the verdicts equal to plain Coraza+CRS at
// the same paranoia level.
//
// The gate (gate.go, internal/gate) makes benign requests cheap: one rule per
// request phase, placed before the families, runs a compiled copy of the
// same rules — Coraza's own transformations and operators (internal/ruleops,
// proven equal by differential tests), every @rx of a value answered by one
// RE2 set scan, results remembered across requests for values that repeat —
// and when it proves that none of them can match, skips them. Otherwise
// Coraza evaluates every rule as usual. Most requests are clean, and for
// them the transaction itself was a third of inspection: the direct path
// (direct.go) builds the collections the gate reads as Coraza would
// (ProcessURI, AddRequestHeader and its cookie parser, the rules before the
// gate, the same body processors) and asks the gate about both phases
// first; only a request proved clean in both passes without a Coraza
// transaction, anything else (a rule that may match, a body that fails to
// parse, multipart, XML, an argument limit) goes through Coraza, so every
// verdict with a match is Coraza's. Tests replay the CRS regression and
// libinjection corpora through engines with and without the gate and
// require the same matches, and compare the direct path's collections with
// a transaction's (TestDirectSameCollections, FuzzDirect).
// Before the body is read, the rule's source lists and per-client rate
// limit apply; after it, its OpenAPI document (kin-openapi) and the
// alert-only bot signals; each with its own protection name in audits.
// Requests are scored as CRS does (anomaly threshold 5) from the matches that
// the rule's exceptions (path glob, parameter, protections) leave.
//
// A body that claims JSON or XML but does not parse is reported by Coraza's
// rule 200002 (protocol) and is then inspected again as one opaque argument
// (raw_body), so an attack inside it is reported as what it is.
//
// The package does not fetch policy and does not ship audits: the sidecar
// creates a Proxy per WAF rule with New, runs Serve on its listener, swaps
// rules with SetRule and receives audits through WithAuditSink.
package waf
