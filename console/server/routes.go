package server

import (
	"net/http"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
)

// Body limits. A route's limit applies to the decoded body; larger bodies get 413.
const (
	smallBody = 64 << 10 // JSON requests of the API itself
	taskBody  = 1 << 20  // a task definition to protect
)

// route is one endpoint. perm "" means no authentication (ping, and
// authenticate, which checks the password itself).
type route struct {
	method, path string
	name         string
	perm         auth.Permission
	maxBody      int64
	handler      http.HandlerFunc
	// page marks a web page: not part of the API document; a browser
	// without a session is sent to the login page.
	page bool
}

// routes is the console's whole API surface.
func (s *Server) routes() []route {
	rts := []route{
		{method: "GET", path: api.PathPing, name: "ping", handler: s.ping},
		{method: "POST", path: api.PathAuthenticate, name: "authenticate", maxBody: smallBody, handler: s.login},
		{method: "POST", path: api.PathFargateJSON, name: "protect.fargate.json", perm: auth.PermProtect, maxBody: taskBody, handler: s.protectJSON},
		{method: "POST", path: api.PathFargateYAML, name: "protect.fargate.yaml", perm: auth.PermProtect, maxBody: taskBody, handler: s.protectYAML},
		{method: "GET", path: api.PathUsers, name: "users.list", perm: auth.PermManageUsers, handler: s.listUsers},
		{method: "POST", path: api.PathUsers, name: "users.create", perm: auth.PermManageUsers, maxBody: smallBody, handler: s.createUser},

		{method: "GET", path: api.PathPolicies, name: "policy.get", perm: auth.PermRead, handler: s.wholePolicy},
		{method: "GET", path: api.PathPolicyHistory, name: "policy.history", perm: auth.PermRead, handler: s.policyHistory},
		{method: "GET", path: api.PathPolicyHistory + "/{revision}", name: "policy.revision", perm: auth.PermRead, handler: s.policyAt},
		{method: "GET", path: api.PathAgentPolicy, name: "agent.policy", perm: auth.PermAgentPolicy, handler: s.agentPolicy},
		{method: "POST", path: api.PathAgentAudits, name: "agent.audits", perm: auth.PermAgentAudits, maxBody: auditBody, handler: s.postAudits},
		{method: "GET", path: api.PathRuntimeAudits, name: "audits.runtime", perm: auth.PermRead, handler: s.runtimeAudits},
		{method: "GET", path: api.PathFirewallAudits, name: "audits.firewall", perm: auth.PermRead, handler: s.firewallAudits},
		{method: "POST", path: api.PathScans, name: "scans.publish", perm: auth.PermPublishScans, maxBody: scanBody, handler: s.publishScan},
		{method: "GET", path: api.PathScans, name: "scans.list", perm: auth.PermRead, handler: s.listScans},
		{method: "GET", path: api.PathScans + "/{id}", name: "scans.get", perm: auth.PermRead, handler: s.getScan},
		{method: "DELETE", path: api.PathScans + "/{id}", name: "scans.delete", perm: auth.PermDeleteScans, handler: s.deleteScan},
		{method: "POST", path: api.PathAgentInventory, name: "agent.inventory", perm: auth.PermAgentInventory, maxBody: inventoryBody, handler: s.postInventory},
		{method: "GET", path: api.PathTaskImages, name: "images.tasks.list", perm: auth.PermRead, handler: s.listTaskImages},
		{method: "GET", path: api.PathTaskImages + "/{id}", name: "images.tasks.get", perm: auth.PermRead, handler: s.getTaskImage},
		{method: "GET", path: api.PathOpenAPI, name: "openapi", handler: s.openAPI},
		{method: "GET", path: api.PathMetrics, name: "metrics", perm: auth.PermRead, handler: s.serveMetrics},
	}
	rts = append(rts, sectionRoutes(s, runtimeSection)...)
	rts = append(rts, sectionRoutes(s, wafSection)...)
	rts = append(rts, sectionRoutes(s, ciSection)...)
	rts = append(rts, sectionRoutes(s, imagesSection)...)
	return append(rts, s.uiRoutes()...)
}
