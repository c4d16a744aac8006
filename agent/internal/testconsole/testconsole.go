// Package testconsole is a small HTTP imitation of the agent endpoints of
// the console API (policy long-poll with ETag, audit batches stored once per
// record ID, container inventories). The sidecar's tests use the real
// console (console/consoletest) instead; this package remains only for the
// launcher and command end-to-end tests (agent/launcher, agent/command) until
// they move to console/consoletest too. It answers as the console does
// (202 with api.AuditIngestResponse for audits).
package testconsole

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Console holds one policy and the audits received.
type Console struct {
	Token string

	mu       sync.Mutex
	pol      *policy.Policy
	changed  chan struct{}
	audits   []api.Audit
	seen     map[string]bool
	posts    int
	failNext int
	arrived  chan struct{}

	inventories   []api.Inventory
	invPosts      int
	failInventory int
}

// New returns a console serving p to clients with token.
func New(token string, p *policy.Policy) *Console {
	return &Console{Token: token, pol: p, changed: make(chan struct{}), seen: map[string]bool{}, arrived: make(chan struct{}, 1)}
}

// SetPolicy replaces the policy and wakes long-polls.
func (c *Console) SetPolicy(p *policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pol = p
	close(c.changed)
	c.changed = make(chan struct{})
}

// FailNext makes the next n audit posts answer 503 after storing nothing.
func (c *Console) FailNext(n int) {
	c.mu.Lock()
	c.failNext = n
	c.mu.Unlock()
}

// Audits returns the distinct records received so far.
func (c *Console) Audits() []api.Audit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]api.Audit(nil), c.audits...)
}

// Posts returns how many audit posts were answered (failed ones included).
func (c *Console) Posts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posts
}

// WaitAudits waits until cond holds for the received audits or d passes.
func (c *Console) WaitAudits(d time.Duration, cond func([]api.Audit) bool) []api.Audit {
	deadline := time.After(d)
	for {
		a := c.Audits()
		if cond(a) {
			return a
		}
		select {
		case <-c.arrived:
		case <-deadline:
			return a
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func etag(p *policy.Policy) string { return fmt.Sprintf(`"rev-%d"`, p.Revision) }

// ServeHTTP serves PathAgentPolicy and PathAgentAudits.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+c.Token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == api.PathAgentPolicy && r.Method == http.MethodGet:
		c.servePolicy(w, r)
	case r.URL.Path == api.PathAgentAudits && r.Method == http.MethodPost:
		c.serveAudits(w, r)
	case r.URL.Path == api.PathAgentInventory && r.Method == http.MethodPost:
		c.serveInventory(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (c *Console) servePolicy(w http.ResponseWriter, r *http.Request) {
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	wait = min(wait, time.Minute)
	deadline := time.After(wait)
	for {
		c.mu.Lock()
		p, changed := c.pol, c.changed
		c.mu.Unlock()
		tag := etag(p)
		if r.Header.Get("If-None-Match") != tag {
			w.Header().Set("ETag", tag)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(p)
			return
		}
		select {
		case <-changed:
		case <-deadline:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (c *Console) serveAudits(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
		return
	}
	var b api.AuditBatch
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&b); err != nil {
		http.Error(w, "bad audit batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.posts++
	if c.failNext > 0 {
		c.failNext--
		c.mu.Unlock()
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	res := api.AuditIngestResponse{Received: len(b.Audits)}
	for _, a := range b.Audits {
		if a.ID == "" || c.seen[a.ID] {
			res.Duplicates++
			continue
		}
		c.seen[a.ID] = true
		c.audits = append(c.audits, a)
		res.Stored++
	}
	c.mu.Unlock()
	select {
	case c.arrived <- struct{}{}:
	default:
	}
	// The console's answer: 202 with the counts (api.Client decodes it).
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(res)
}

// FailInventories makes the next n inventory posts answer 503.
func (c *Console) FailInventories(n int) {
	c.mu.Lock()
	c.failInventory = n
	c.mu.Unlock()
}

// Inventories returns the inventories received so far, oldest first.
func (c *Console) Inventories() []api.Inventory {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]api.Inventory(nil), c.inventories...)
}

// InventoryPosts returns how many inventory posts were answered (failed ones included).
func (c *Console) InventoryPosts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.invPosts
}

// WaitInventories waits until cond holds for the received inventories or d passes.
func (c *Console) WaitInventories(d time.Duration, cond func([]api.Inventory) bool) []api.Inventory {
	deadline := time.After(d)
	for {
		inv := c.Inventories()
		if cond(inv) {
			return inv
		}
		select {
		case <-deadline:
			return inv
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Console) serveInventory(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
		return
	}
	var inv api.Inventory
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&inv); err != nil {
		http.Error(w, "bad inventory: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := inv.Validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invPosts++
	if c.failInventory > 0 {
		c.failInventory--
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	c.inventories = append(c.inventories, inv)
	w.WriteHeader(http.StatusNoContent)
}
