package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Endpoint paths of the credential lifecycle.
const (
	// PathLogout revokes the bearer token (or session cookie) the request
	// comes with (POST).
	PathLogout = "/api/v1/logout"
	// PathTokens lists tokens (GET): an admin's every token, anyone else's
	// their own. PathTokens + "/{id}" revokes one (DELETE).
	PathTokens = "/api/v1/tokens"
	// PathAgentTokens rotates a task family's agent credential (POST, admin).
	PathAgentTokens = "/api/v1/tokens/agent"
)

// UserPath is the path of one user: PathUsers + "/" + the escaped name.
func UserPath(name string) string { return PathUsers + "/" + url.PathEscape(name) }

// UpdateUserRequest is the body of a PATCH of a user; absent fields are kept.
type UpdateUserRequest struct {
	Role         *string   `json:"role,omitempty"`
	TaskFamilies *[]string `json:"taskFamilies,omitempty"`
	Disabled     *bool     `json:"disabled,omitempty"`
}

// SetPasswordRequest is the body of a PUT to UserPath(name) + "/password".
// An admin may set anyone's; a user their own, with CurrentPassword.
type SetPasswordRequest struct {
	Password        string `json:"password"`
	CurrentPassword string `json:"currentPassword,omitempty"`
}

// Token is a token record as the API shows it: never the token itself.
type Token struct {
	// ID is the hex SHA-256 digest of the token: it names the token in
	// lists and revocations and reveals nothing of it.
	ID         string    `json:"id"`
	Subject    string    `json:"subject"`
	Role       string    `json:"role"`
	TaskFamily string    `json:"taskFamily,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	// Current marks the token this request came with.
	Current bool `json:"current,omitempty"`
}

// RotateAgentTokenRequest is the body of a POST to PathAgentTokens.
type RotateAgentTokenRequest struct {
	TaskFamily string `json:"taskFamily"`
	// Overlap is how long the family's older credentials keep working, as a
	// Go duration ("24h"); empty means 24h, "0s" ends them at once.
	Overlap string `json:"overlap,omitempty"`
}

// RotateAgentTokenResponse carries the new agent credential, shown once.
type RotateAgentTokenResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// OlderExpireAt is when the family's older credentials stop working.
	OlderExpireAt time.Time `json:"olderExpireAt"`
	// Older is how many older credentials were cut short.
	Older int64 `json:"older"`
}

// Logout revokes the client's own bearer token.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, PathLogout, nil, "", nil)
	return err
}

// User returns one user (admin only).
func (c *Client) User(ctx context.Context, name string) (User, error) {
	var out User
	err := c.doJSON(ctx, http.MethodGet, UserPath(name), nil, nil, &out)
	return out, err
}

// UpdateUser changes a user's role, task families or disabled flag (admin only).
func (c *Client) UpdateUser(ctx context.Context, name string, req UpdateUserRequest) (User, error) {
	var out User
	err := c.doJSON(ctx, http.MethodPatch, UserPath(name), nil, req, &out)
	return out, err
}

// DeleteUser deletes a user and their tokens (admin only).
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, UserPath(name), nil, "", nil)
	return err
}

// SetPassword sets a user's password; every token of the user is revoked.
func (c *Client) SetPassword(ctx context.Context, name string, req SetPasswordRequest) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, UserPath(name)+"/password", nil, "application/json", bytes.NewReader(b))
	return err
}

// Tokens lists tokens: all of them for an admin (filtered by subject or
// family when given), the caller's own for anyone else.
func (c *Client) Tokens(ctx context.Context, subject, family string) ([]Token, error) {
	q := url.Values{}
	if subject != "" {
		q.Set("subject", subject)
	}
	if family != "" {
		q.Set("taskFamily", family)
	}
	var out []Token
	err := c.doJSON(ctx, http.MethodGet, PathTokens, q, nil, &out)
	return out, err
}

// RevokeToken revokes the token with that ID.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, PathTokens+"/"+url.PathEscape(id), nil, "", nil)
	return err
}

// RotateAgentToken mints a new agent credential for a family (admin only).
func (c *Client) RotateAgentToken(ctx context.Context, req RotateAgentTokenRequest) (RotateAgentTokenResponse, error) {
	var out RotateAgentTokenResponse
	err := c.doJSON(ctx, http.MethodPost, PathAgentTokens, nil, req, &out)
	return out, err
}
