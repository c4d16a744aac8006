// Package auth decides who is calling the console and what they may do:
// users and roles (agent-role users bound to task families, disabled users),
// bcrypt password hashing, bearer tokens (random user tokens that expire and
// can be revoked, and per-task-family agent credentials that expire by period
// and rotate), and the throttling of password attempts, counted in the store
// so that concurrent guesses and console replicas share one count.
//
// It stores nothing itself (package store does) and knows nothing of HTTP
// routes: the server asks Authenticator.Request who a request comes from and
// Role.Can whether that role may do what the route does.
package auth
