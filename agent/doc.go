// Package agent is the taskguard defender that runs inside every protected
// Fargate task: the sidecar (policy sync, audit shipping, WAF reverse proxy)
// and, in each app container, the launcher that enforces process and network
// policy on the app's process tree.
package agent
