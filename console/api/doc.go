// Package api holds the console's wire types and endpoint paths, shared by the
// console server, the defender, the CLI and the CI integrations. It pulls in no
// server code. The Go client for these endpoints lives here too.
package api

// Endpoint paths of the console API, version 1.
const (
	PathPing         = "/api/v1/_ping"
	PathAuthenticate = "/api/v1/authenticate"
	PathFargateJSON  = "/api/v1/defenders/fargate.json"
	PathFargateYAML  = "/api/v1/defenders/fargate.yaml"
	PathAgentPolicy  = "/api/v1/agent/policy"
	PathAgentAudits  = "/api/v1/agent/audits"
	PathScans        = "/api/v1/scans"
)
