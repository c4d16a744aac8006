package sidecar

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Console is the sidecar's view of the console: its address, the agent token
// (a bearer token that can only fetch policy, post audits and inventories)
// and the HTTP client carrying its TLS settings. Every request goes through
// the one console client, api.Client, whose errors are typed
// (*api.StatusError: status and the console's message).
type Console struct {
	BaseURL string
	Token   string
	HTTP    *http.Client

	once   sync.Once
	client *api.Client
	err    error
}

func (c *Console) api() (*api.Client, error) {
	c.once.Do(func() {
		hc := c.HTTP
		if hc == nil {
			hc = http.DefaultClient
		}
		c.client, c.err = api.NewClient(c.BaseURL, api.WithToken(c.Token), api.WithHTTPClient(hc))
	})
	return c.client, c.err
}

// Send posts one batch to PathAgentAudits; it implements audit.Sink.
func (c *Console) Send(ctx context.Context, audits []api.Audit) error {
	_, err := c.PostAudits(ctx, audits)
	return err
}

// PostAudits posts one batch and returns the console's answer, which names
// the records it did not store.
func (c *Console) PostAudits(ctx context.Context, audits []api.Audit) (api.AuditIngestResponse, error) {
	cl, err := c.api()
	if err != nil {
		return api.AuditIngestResponse{}, err
	}
	res, err := cl.PostAudits(ctx, api.AuditBatch{Audits: audits})
	if err != nil {
		return res, fmt.Errorf("post audits: %w", trustHint(err))
	}
	return res, nil
}

// SendInventory posts one container's inventory to PathAgentInventory.
func (c *Console) SendInventory(ctx context.Context, inv api.Inventory) error {
	cl, err := c.api()
	if err != nil {
		return err
	}
	if err := cl.PostInventory(ctx, inv); err != nil {
		return fmt.Errorf("post inventory: %w", trustHint(err))
	}
	return nil
}

// Policy fetches the policy. With etag set the console may hold the request
// up to wait and answer 304 Not Modified: then Policy returns nil and the same etag.
func (c *Console) Policy(ctx context.Context, etag string, wait time.Duration) (*policy.Policy, string, error) {
	cl, err := c.api()
	if err != nil {
		return nil, etag, err
	}
	p, tag, modified, err := cl.AgentPolicy(ctx, etag, wait)
	if err != nil {
		return nil, etag, fmt.Errorf("get policy: %w", trustHint(err))
	}
	if !modified {
		return nil, etag, nil
	}
	if err := p.Validate(); err != nil {
		return nil, etag, fmt.Errorf("get policy: console sent an invalid policy (kept the last good one): %w", err)
	}
	return &p, tag, nil
}
