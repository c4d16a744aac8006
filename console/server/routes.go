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
}

// routes is the console's whole API surface.
func (s *Server) routes() []route {
	return []route{
		{method: "GET", path: api.PathPing, name: "ping", handler: s.ping},
		{method: "POST", path: api.PathAuthenticate, name: "authenticate", maxBody: smallBody, handler: s.login},
		{method: "POST", path: api.PathFargateJSON, name: "protect.fargate.json", perm: auth.PermProtect, maxBody: taskBody, handler: s.protectJSON},
		{method: "POST", path: api.PathFargateYAML, name: "protect.fargate.yaml", perm: auth.PermProtect, maxBody: taskBody, handler: s.protectYAML},
		{method: "GET", path: api.PathUsers, name: "users.list", perm: auth.PermManageUsers, handler: s.listUsers},
		{method: "POST", path: api.PathUsers, name: "users.create", perm: auth.PermManageUsers, maxBody: smallBody, handler: s.createUser},
	}
}
