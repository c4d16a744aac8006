package api

import "time"

// More endpoint paths of the console API, version 1.
const (
	// PathUsers lists users (GET) and creates one (POST); admin only.
	PathUsers = "/api/v1/users"
)

// AuthenticateRequest is the body of a POST to PathAuthenticate.
type AuthenticateRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// AuthenticateResponse carries a bearer token for the Authorization header
// ("Bearer <token>") and when it stops working.
type AuthenticateResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// User is a console account as the API shows it: never with a password or hash.
type User struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	// TaskFamilies are the families an agent-role user is bound to.
	TaskFamilies []string  `json:"taskFamilies,omitempty"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt,omitzero"`
}

// CreateUserRequest is the body of a POST to PathUsers.
type CreateUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
	// TaskFamilies binds an agent-role user to task families (required for
	// that role, refused for the others).
	TaskFamilies []string `json:"taskFamilies,omitempty"`
}

// Error is the body of every console error response.
type Error struct {
	Error string `json:"error"`
}
