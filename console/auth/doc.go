// Package auth decides who is calling the console and what they may do:
// users and roles, bcrypt password hashing, bearer tokens (random user tokens
// that expire, and per-task-family agent credentials), and the slow-down of
// repeated password failures.
//
// It stores nothing itself (package store does) and knows nothing of HTTP
// routes: the server asks Authenticator.Request who a request comes from and
// Role.Can whether that role may do what the route does.
package auth
