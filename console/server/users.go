package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
)

// The credential lifecycle: users (admins manage them; everyone changes
// their own password), tokens (listed and revoked; logout revokes the one in
// use) and agent credential rotation.

func (s *Server) credentialRoutes() []route {
	one := api.PathUsers + "/{name}"
	return []route{
		{method: "GET", path: one, name: "users.get", perm: auth.PermManageUsers, handler: s.getUser},
		{method: "PATCH", path: one, name: "users.update", perm: auth.PermManageUsers, maxBody: smallBody, handler: s.updateUser},
		{method: "DELETE", path: one, name: "users.delete", perm: auth.PermManageUsers, handler: s.deleteUser},
		{method: "PUT", path: one + "/password", name: "users.password", perm: auth.PermOwnCredentials, maxBody: smallBody, handler: s.setPassword},
		{method: "POST", path: api.PathLogout, name: "logout", perm: auth.PermOwnCredentials, handler: s.apiLogout},
		{method: "GET", path: api.PathTokens, name: "tokens.list", perm: auth.PermOwnCredentials, handler: s.listTokens},
		{method: "DELETE", path: api.PathTokens + "/{id}", name: "tokens.revoke", perm: auth.PermOwnCredentials, handler: s.revokeToken},
		{method: "POST", path: api.PathAgentTokens, name: "tokens.agent.rotate", perm: auth.PermManageUsers, maxBody: smallBody, handler: s.rotateAgentToken},
	}
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.User(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no user %q", r.PathValue("name")))
		return
	}
	if err != nil {
		s.internalError(w, r, "read user", err)
		return
	}
	writeJSON(w, http.StatusOK, apiUser(u))
}

// keepsAnAdmin refuses a change that would leave no enabled admin: the
// console could then never be administered again.
func (s *Server) keepsAnAdmin(r *http.Request, name string, stillAdmin bool) error {
	if stillAdmin {
		return nil
	}
	users, err := s.store.Users(r.Context())
	if err != nil {
		return err
	}
	target, others := false, 0
	for _, u := range users {
		if u.Role != string(auth.RoleAdmin) || u.Disabled {
			continue
		}
		if u.Username == name {
			target = true
		} else {
			others++
		}
	}
	if target && others == 0 {
		return &httpError{http.StatusConflict, fmt.Sprintf("%q is the last enabled admin: make another admin first", name)}
	}
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	var req api.UpdateUserRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		badBody(w, err)
		return
	}
	name := r.PathValue("name")
	c := auth.UserChange{TaskFamilies: req.TaskFamilies, Disabled: req.Disabled}
	if req.Role != nil {
		role := auth.Role(*req.Role)
		c.Role = &role
	}
	cur, err := s.store.User(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no user %q", name))
		return
	}
	if err != nil {
		s.internalError(w, r, "read user", err)
		return
	}
	stillAdmin := (c.Role == nil && cur.Role == string(auth.RoleAdmin) || c.Role != nil && *c.Role == auth.RoleAdmin) &&
		!(c.Disabled != nil && *c.Disabled || c.Disabled == nil && cur.Disabled)
	if !s.checkKeepsAdmin(w, r, name, stillAdmin) {
		return
	}
	u, err := s.auth.UpdateUser(r.Context(), name, c)
	if !s.userError(w, r, name, "update user", err) {
		return
	}
	s.log.Info("user updated", "id", info(r.Context()).id, "by", info(r.Context()).subject, "username", name,
		"role", u.Role, "disabled", u.Disabled, "taskFamilies", u.TaskFamilies)
	writeJSON(w, http.StatusOK, apiUser(u))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.checkKeepsAdmin(w, r, name, false) {
		return
	}
	err := s.store.DeleteUser(r.Context(), name)
	if !s.userError(w, r, name, "delete user", err) {
		return
	}
	s.log.Info("user deleted", "id", info(r.Context()).id, "by", info(r.Context()).subject, "username", name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) checkKeepsAdmin(w http.ResponseWriter, r *http.Request, name string, stillAdmin bool) bool {
	err := s.keepsAnAdmin(r, name, stillAdmin)
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
		return false
	case err != nil:
		s.internalError(w, r, "count admins", err)
		return false
	}
	return true
}

// userError answers a failed user operation; it reports whether err was nil.
func (s *Server) userError(w http.ResponseWriter, r *http.Request, name, what string, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no user %q", name))
	case errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.internalError(w, r, what, err)
	}
	return false
}

// setPassword: an admin sets anyone's password; a user sets their own with
// the current one. Every token of the user is revoked.
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	var req api.SetPasswordRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		badBody(w, err)
		return
	}
	name := r.PathValue("name")
	p, _ := auth.PrincipalFrom(r.Context())
	if !p.Role.Can(auth.PermManageUsers) {
		if p.Subject != name {
			writeError(w, http.StatusForbidden, fmt.Sprintf("role %q may only change its own password", p.Role))
			return
		}
		ok, err := s.auth.CheckPassword(r.Context(), name, req.CurrentPassword)
		if err != nil {
			s.internalError(w, r, "check password", err)
			return
		}
		if !ok {
			writeError(w, http.StatusForbidden, `"currentPassword" is not your current password`)
			return
		}
	}
	err := s.auth.SetPassword(r.Context(), name, req.Password)
	if !s.userError(w, r, name, "set password", err) {
		return
	}
	s.log.Info("password changed", "id", info(r.Context()).id, "by", info(r.Context()).subject, "username", name)
	w.WriteHeader(http.StatusNoContent)
}

// apiLogout revokes the token the request came with.
func (s *Server) apiLogout(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	if p.TokenID == "" {
		writeError(w, http.StatusBadRequest, "this request came with a password, not a token: there is nothing to log out of")
		return
	}
	if err := s.auth.RevokeBearer(r.Context(), p); err != nil {
		s.internalError(w, r, "revoke token", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func apiToken(t store.Token, current string) api.Token {
	id := auth.TokenID(t.Digest)
	return api.Token{ID: id, Subject: t.Subject, Role: t.Role, TaskFamily: t.TaskFamily,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, Current: id == current}
}

// tokensFor lists the tokens a principal may see: every token for an admin
// (filtered by subject and family), its own for anyone else.
func (s *Server) tokensFor(r *http.Request, p auth.Principal) ([]api.Token, error) {
	q := store.TokenQuery{Subject: p.Subject, Limit: 1000}
	if p.Role.Can(auth.PermManageUsers) {
		q = store.TokenQuery{Subject: r.URL.Query().Get("subject"), TaskFamily: r.URL.Query().Get("taskFamily"), Limit: 1000}
	}
	toks, err := s.store.Tokens(r.Context(), q)
	if err != nil {
		return nil, err
	}
	out := make([]api.Token, 0, len(toks))
	for _, t := range toks {
		out = append(out, apiToken(t, p.TokenID))
	}
	return out, nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	out, err := s.tokensFor(r, p)
	if err != nil {
		s.internalError(w, r, "list tokens", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	owner := p.Subject
	if p.Role.Can(auth.PermManageUsers) {
		owner = ""
	}
	id := r.PathValue("id")
	err := s.auth.RevokeToken(r.Context(), id, owner)
	switch {
	case errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no token %.80q of yours", id))
		return
	case err != nil:
		s.internalError(w, r, "revoke token", err)
		return
	}
	s.log.Info("token revoked", "id", info(r.Context()).id, "by", info(r.Context()).subject, "token", id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rotateAgentToken(w http.ResponseWriter, r *http.Request) {
	var req api.RotateAgentTokenRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		badBody(w, err)
		return
	}
	overlap := auth.DefaultRotationOverlap
	if req.Overlap != "" {
		d, err := time.ParseDuration(req.Overlap)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf(`"overlap" %q: want a duration such as 24h, or 0s`, req.Overlap))
			return
		}
		overlap = d
	}
	tok, older, err := s.auth.RotateAgentToken(r.Context(), req.TaskFamily, overlap)
	if errors.Is(err, auth.ErrInvalid) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.internalError(w, r, "rotate agent token", err)
		return
	}
	s.log.Info("agent credential rotated", "id", info(r.Context()).id, "by", info(r.Context()).subject,
		"taskFamily", req.TaskFamily, "token", tok.ID, "olderCutShort", older, "overlap", overlap)
	writeJSON(w, http.StatusCreated, api.RotateAgentTokenResponse{Token: tok.Token, ID: tok.ID, ExpiresAt: tok.ExpiresAt,
		OlderExpireAt: tok.OlderExpireAt, Older: older})
}
