package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
)

func (s *Server) ping(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("OK"))
}

// parseAuthenticate reads the body of POST /api/v1/authenticate.
func parseAuthenticate(body []byte) (api.AuthenticateRequest, error) {
	var req api.AuthenticateRequest
	if err := decodeJSON(bytes.NewReader(body), &req); err != nil {
		return api.AuthenticateRequest{}, err
	}
	if req.Username == "" || req.Password == "" {
		return api.AuthenticateRequest{}, errors.New(`request body needs both "username" and "password"`)
	}
	return req, nil
}

// login exchanges a user name and password for a bearer token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badBody(w, err)
		return
	}
	req, err := parseAuthenticate(body)
	if err != nil {
		badBody(w, err)
		return
	}
	p, err := s.auth.Password(r.Context(), req.Username, req.Password, auth.Source(r))
	if err != nil {
		s.authError(w, r, err)
		return
	}
	info(r.Context()).subject = p.Subject
	token, expires, err := s.auth.IssueToken(r.Context(), p)
	if err != nil {
		s.internalError(w, r, "issue token", err)
		return
	}
	writeJSON(w, http.StatusOK, api.AuthenticateResponse{Token: token, ExpiresAt: expires})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.store.Users(r.Context())
	if err != nil {
		s.internalError(w, r, "list users", err)
		return
	}
	out := make([]api.User, 0, len(users))
	for _, u := range users {
		out = append(out, apiUser(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req api.CreateUserRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		badBody(w, err)
		return
	}
	err := s.auth.CreateUser(r.Context(), req.Username, req.Password, auth.Role(req.Role), req.TaskFamilies...)
	switch {
	case errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, fmt.Sprintf("user %q already exists", req.Username))
		return
	case err != nil:
		s.internalError(w, r, "create user", err)
		return
	}
	u, err := s.store.User(r.Context(), req.Username)
	if err != nil {
		s.internalError(w, r, "read the new user", err)
		return
	}
	s.log.Info("user created", "id", info(r.Context()).id, "by", info(r.Context()).subject, "username", u.Username, "role", u.Role)
	writeJSON(w, http.StatusCreated, apiUser(u))
}

func apiUser(u store.User) api.User {
	return api.User{Username: u.Username, Role: u.Role, TaskFamilies: u.TaskFamilies, Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// internalError logs what failed and answers 500 without the detail.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error(what, "id", info(r.Context()).id, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}
