// Package server is the console's HTTP stack: the route table, the ordered
// middleware chain every route runs through (request ID and logging, metrics,
// panic recovery, security headers, body limits, authentication and role
// check), the API handlers (users, Fargate protection, policy with revisions,
// the defender's policy long-poll and audit ingest, audit queries, scans),
// the Prometheus metrics, the OpenAPI document and the web pages. It returns
// an http.Handler; listening, TLS and shutdown are the caller's (package
// console).
package server
