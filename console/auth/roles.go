package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a user or token may do.
type Role string

// The roles. Every role's permissions are in rolePermissions.
const (
	// RoleAdmin may do everything, including managing users.
	RoleAdmin Role = "admin"
	// RoleDefenderManager may protect task definitions (the seeds' "Defender Manager").
	RoleDefenderManager Role = "defender-manager"
	// RoleCI may publish scan results and read what CI gates need.
	RoleCI Role = "ci"
	// RoleAuditor may read, never change.
	RoleAuditor Role = "auditor"
	// RoleAgent is the defender's credential: fetch policy, post audits and container inventories, nothing else.
	RoleAgent Role = "agent"
)

// Roles lists every role in a stable order.
var Roles = []Role{RoleAdmin, RoleDefenderManager, RoleCI, RoleAuditor, RoleAgent}

// Permission names one thing a route does; its text reads well after "may not".
type Permission string

// The permissions routes ask for.
const (
	PermManageUsers  Permission = "manage users"
	PermProtect      Permission = "protect task definitions"
	PermPublishScans Permission = "publish scan results"
	PermRead         Permission = "read console data"
	PermAgentPolicy  Permission = "fetch defender policy"
	PermAgentAudits  Permission = "post defender audits"
	// PermAgentInventory posts the inventory of a running container.
	PermAgentInventory Permission = "post container inventories"
	PermEditPolicy     Permission = "change policy"
	// PermDeleteScans removes published CI scan results.
	PermDeleteScans Permission = "delete scan results"
)

// rolePermissions is the whole access model: a role may do what is listed, nothing else.
var rolePermissions = map[Role][]Permission{
	RoleAdmin:           {PermManageUsers, PermProtect, PermPublishScans, PermRead, PermAgentPolicy, PermAgentAudits, PermEditPolicy, PermAgentInventory, PermDeleteScans},
	RoleDefenderManager: {PermProtect, PermRead},
	RoleCI:              {PermPublishScans, PermRead},
	RoleAuditor:         {PermRead},
	RoleAgent:           {PermAgentPolicy, PermAgentAudits, PermAgentInventory},
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	_, ok := rolePermissions[r]
	return ok
}

// Can reports whether r may do p.
func (r Role) Can(p Permission) bool { return slices.Contains(rolePermissions[r], p) }

// ParseRole returns the role named s, or an error listing the known roles.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("%w role %q: the roles are %s", ErrInvalid, s, roleList())
	}
	return r, nil
}

func roleList() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}
