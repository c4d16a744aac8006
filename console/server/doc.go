// Package server is the console's HTTP stack: the route table, the ordered
// middleware chain every route runs through (request ID and logging, panic
// recovery, body limits, authentication and role check), and the API
// handlers. It returns an http.Handler; listening, TLS and shutdown are the
// caller's (package console).
package server
