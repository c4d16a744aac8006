package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Console talks to the two agent endpoints of the console API with the
// agent token (a bearer token that can only fetch policy and post audits).
type Console struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

func (c *Console) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// Never let the token or query reach a log: name the path only.
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, unwrapURLError(err))
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return trustHint(err)
}

// Send posts one batch to PathAgentAudits. Any 2xx is success.
func (c *Console) Send(ctx context.Context, audits []api.Audit) error {
	body, err := json.Marshal(api.AuditBatch{Audits: audits})
	if err != nil {
		return fmt.Errorf("encode audits: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+api.PathAgentAudits, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post audits: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post audits: console answered %s", resp.Status)
	}
	return nil
}

// Policy fetches the policy. With etag set the console may hold the request
// up to wait and answer 304 Not Modified: then Policy returns nil and the same etag.
func (c *Console) Policy(ctx context.Context, etag string, wait time.Duration) (*policy.Policy, string, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + api.PathAgentPolicy
	if wait > 0 {
		u += "?wait=" + wait.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, etag, fmt.Errorf("get policy: %w", err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, etag, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, nil
	case http.StatusOK:
	default:
		return nil, etag, fmt.Errorf("get policy: console answered %s", resp.Status)
	}
	var p policy.Policy
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&p); err != nil {
		return nil, etag, fmt.Errorf("get policy: decode: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, etag, fmt.Errorf("get policy: console sent an invalid policy (kept the last good one): %w", err)
	}
	return &p, resp.Header.Get("ETag"), nil
}
