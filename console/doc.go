// Package console is the taskguard console server: the HTTP API and web pages
// that protect task definitions, serve policy to defenders and collect audits
// and scan results.
package console
