package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/policy"
)

// Endpoint paths of the policy, audit and scan API.
const (
	// PathPolicies is the whole policy document (GET).
	PathPolicies = "/api/v1/policies"
	// PathPolicyHistory lists the policy changes, newest first (GET);
	// PathPolicyHistory + "/{revision}" is the document at that revision.
	PathPolicyHistory = "/api/v1/policies/history"
	// PathRuntimePolicy is the runtime (App Embedded) rule list: GET, PUT
	// (replace), POST (add one); + "/{name}" is one rule: GET, PUT, DELETE.
	PathRuntimePolicy = "/api/v1/policies/runtime/app-embedded"
	// PathWAFPolicy is the WAF (CNAF) rule list, with the same methods.
	PathWAFPolicy = "/api/v1/policies/firewall/app-embedded"
	// PathCIPolicy is the CI gate rule list, with the same methods.
	PathCIPolicy = "/api/v1/policies/ci"
	// PathImagePolicy is the alert rule list for images running in tasks,
	// with the same methods.
	PathImagePolicy = "/api/v1/policies/images/app-embedded"
	// PathRuntimeAudits queries process, network, DNS and defender audits.
	PathRuntimeAudits = "/api/v1/audits/runtime/app-embedded"
	// PathFirewallAudits queries WAF audits.
	PathFirewallAudits = "/api/v1/audits/firewall/app-embedded"
)

// FieldError names one invalid field of a policy write.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError is the body of a 400 answer to a policy write: Error is
// the whole message, Fields each problem.
type ValidationError struct {
	Error  string       `json:"error"`
	Fields []FieldError `json:"fields,omitempty"`
}

// PolicyChange is one entry of the policy's admin audit trail.
type PolicyChange struct {
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Rule     string    `json:"rule,omitempty"`
}

// AuditIngestResponse is the answer (202) to a POST to PathAgentAudits. The
// console takes a batch record by record: a record it cannot store is named
// in Rejected and the others are stored; text fields over the console's limit
// are stored cut, with TruncatedMarker, and counted in Truncated.
type AuditIngestResponse struct {
	// Received is how many records the batch held, Stored how many were new,
	// Duplicates how many were already stored (a retried batch).
	Received   int `json:"received"`
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
	// Truncated is how many stored records had a field cut.
	Truncated int `json:"truncated,omitempty"`
	// Rejected are the records that were not stored, with the reason. Sending
	// them again does not help: they are refused for what they hold.
	Rejected []AuditRejection `json:"rejected,omitempty"`
}

// AuditRejection names one record of a batch the console did not store.
type AuditRejection struct {
	// Index is the record's position in the batch, from 0.
	Index int `json:"index"`
	// ID is the record's id as sent (made safe, at most 128 bytes), if any.
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// AuditPage is one page of an audit query; pass Next as ?cursor= for the next.
type AuditPage struct {
	Audits []Audit `json:"audits"`
	Next   string  `json:"next,omitempty"`
}

// AuditQuery are the filters of an audit query; zero fields do not filter.
type AuditQuery struct {
	From, To  time.Time
	Task      string // task family or task ID
	Container string
	Kind      AuditKind
	Rule      string
	// Detector keeps the threat audits of one built-in detector.
	Detector string
	Effect   policy.Effect
	Text     string
	Limit    int
	Cursor   string
}

// Values returns the query as URL parameters.
func (q AuditQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.Format(time.RFC3339Nano))
	}
	set("task", q.Task)
	set("container", q.Container)
	set("kind", string(q.Kind))
	set("rule", q.Rule)
	set("detector", q.Detector)
	set("effect", string(q.Effect))
	set("q", q.Text)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// ScanSummary is a scan in the list of PathScans.
type ScanSummary struct {
	ID         string          `json:"id"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Publisher  string          `json:"publisher"`
	Image      string          `json:"image,omitempty"`
	Digest     string          `json:"digest,omitempty"`
	TaskFamily string          `json:"taskFamily,omitempty"`
	Result     string          `json:"result"`
	Summary    json.RawMessage `json:"summary"`
}

// ScanPage is one page of scans.
type ScanPage struct {
	Scans []ScanSummary `json:"scans"`
	Next  string        `json:"next,omitempty"`
}

// ScanDetail is one scan with the CI report as it was posted.
type ScanDetail struct {
	ScanSummary
	Report json.RawMessage `json:"report"`
}

// Policy returns the whole policy document.
func (c *Client) Policy(ctx context.Context) (policy.Policy, error) {
	var p policy.Policy
	err := c.doJSON(ctx, http.MethodGet, PathPolicies, nil, nil, &p)
	return p, err
}

// PolicyHistory returns the newest policy changes first.
func (c *Client) PolicyHistory(ctx context.Context) ([]PolicyChange, error) {
	var out []PolicyChange
	err := c.doJSON(ctx, http.MethodGet, PathPolicyHistory, nil, nil, &out)
	return out, err
}

// RuntimeRules returns the runtime rules and the policy revision.
func (c *Client) RuntimeRules(ctx context.Context) ([]policy.RuntimeRule, int64, error) {
	var out []policy.RuntimeRule
	rev, err := c.getRules(ctx, PathRuntimePolicy, &out)
	return out, rev, err
}

// WAFRules returns the WAF rules and the policy revision.
func (c *Client) WAFRules(ctx context.Context) ([]policy.WAFRule, int64, error) {
	var out []policy.WAFRule
	rev, err := c.getRules(ctx, PathWAFPolicy, &out)
	return out, rev, err
}

// CIRules returns the CI gate rules (what `taskguard ci --console` applies)
// and the policy revision.
func (c *Client) CIRules(ctx context.Context) ([]policy.CIRule, int64, error) {
	var out []policy.CIRule
	rev, err := c.getRules(ctx, PathCIPolicy, &out)
	return out, rev, err
}

// SetRuntimeRules replaces the runtime rules. ifRevision > 0 makes the write
// fail with 412 when the policy is no longer at that revision. It returns the
// new revision.
func (c *Client) SetRuntimeRules(ctx context.Context, rules []policy.RuntimeRule, ifRevision int64) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, PathRuntimePolicy, rules, ifRevision)
}

// SetWAFRules replaces the WAF rules; see SetRuntimeRules.
func (c *Client) SetWAFRules(ctx context.Context, rules []policy.WAFRule, ifRevision int64) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, PathWAFPolicy, rules, ifRevision)
}

// SetCIRules replaces the CI rules; see SetRuntimeRules.
func (c *Client) SetCIRules(ctx context.Context, rules []policy.CIRule, ifRevision int64) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, PathCIPolicy, rules, ifRevision)
}

// AddRuntimeRule appends a runtime rule (409 when the name is taken).
func (c *Client) AddRuntimeRule(ctx context.Context, r policy.RuntimeRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPost, PathRuntimePolicy, r, 0)
}

// AddWAFRule appends a WAF rule.
func (c *Client) AddWAFRule(ctx context.Context, r policy.WAFRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPost, PathWAFPolicy, r, 0)
}

// AddCIRule appends a CI rule.
func (c *Client) AddCIRule(ctx context.Context, r policy.CIRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPost, PathCIPolicy, r, 0)
}

// UpdateRuntimeRule replaces the runtime rule called name (it may rename it).
func (c *Client) UpdateRuntimeRule(ctx context.Context, name string, r policy.RuntimeRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, rulePath(PathRuntimePolicy, name), r, 0)
}

// UpdateWAFRule replaces the WAF rule called name.
func (c *Client) UpdateWAFRule(ctx context.Context, name string, r policy.WAFRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, rulePath(PathWAFPolicy, name), r, 0)
}

// UpdateCIRule replaces the CI rule called name.
func (c *Client) UpdateCIRule(ctx context.Context, name string, r policy.CIRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, rulePath(PathCIPolicy, name), r, 0)
}

// DeleteRuntimeRule deletes the runtime rule called name.
func (c *Client) DeleteRuntimeRule(ctx context.Context, name string) (int64, error) {
	return c.writeRules(ctx, http.MethodDelete, rulePath(PathRuntimePolicy, name), nil, 0)
}

// DeleteWAFRule deletes the WAF rule called name.
func (c *Client) DeleteWAFRule(ctx context.Context, name string) (int64, error) {
	return c.writeRules(ctx, http.MethodDelete, rulePath(PathWAFPolicy, name), nil, 0)
}

// DeleteCIRule deletes the CI rule called name.
func (c *Client) DeleteCIRule(ctx context.Context, name string) (int64, error) {
	return c.writeRules(ctx, http.MethodDelete, rulePath(PathCIPolicy, name), nil, 0)
}

func rulePath(section, name string) string { return section + "/" + url.PathEscape(name) }

func (c *Client) getRules(ctx context.Context, path string, out any) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil, nil, nil)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return 0, fmt.Errorf("GET %s: decode the console's answer: %w", path, err)
	}
	return ParseETag(resp.header.Get("ETag")), nil
}

func (c *Client) writeRules(ctx context.Context, method, path string, in any, ifRevision int64) (int64, error) {
	h := http.Header{}
	if ifRevision > 0 {
		h.Set("If-Match", ETag(ifRevision))
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, method, path, nil, h, body)
	if err != nil {
		return 0, err
	}
	return ParseETag(resp.header.Get("ETag")), nil
}

// ETag is the entity tag of a policy revision: the revision in quotes.
func ETag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// ParseETag returns the revision of an ETag made by ETag, or 0.
func ParseETag(s string) int64 {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	n, err := strconv.ParseInt(strings.Trim(s, `"`), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// AgentPolicy is the defender's fetch: etag is the last ETag seen ("" for
// none) and wait how long the console may hold the request. It returns the
// policy and its ETag, or modified false when the console answered 304.
func (c *Client) AgentPolicy(ctx context.Context, etag string, wait time.Duration) (p policy.Policy, newTag string, modified bool, err error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	resp, err := c.send(ctx, http.MethodGet, PathAgentPolicy, q, h, nil)
	if err != nil {
		return policy.Policy{}, "", false, err
	}
	if resp.status == http.StatusNotModified {
		return policy.Policy{}, etag, false, nil
	}
	if err := json.Unmarshal(resp.body, &p); err != nil {
		return policy.Policy{}, "", false, fmt.Errorf("GET %s: decode the console's answer: %w", PathAgentPolicy, err)
	}
	return p, resp.header.Get("ETag"), true, nil
}

// PostAudits sends a batch of audits (role agent).
func (c *Client) PostAudits(ctx context.Context, batch AuditBatch) (AuditIngestResponse, error) {
	var out AuditIngestResponse
	err := c.doJSON(ctx, http.MethodPost, PathAgentAudits, nil, batch, &out)
	return out, err
}

// RuntimeAudits queries runtime audits.
func (c *Client) RuntimeAudits(ctx context.Context, q AuditQuery) (AuditPage, error) {
	var out AuditPage
	err := c.doJSON(ctx, http.MethodGet, PathRuntimeAudits, q.Values(), nil, &out)
	return out, err
}

// FirewallAudits queries WAF audits.
func (c *Client) FirewallAudits(ctx context.Context, q AuditQuery) (AuditPage, error) {
	var out AuditPage
	err := c.doJSON(ctx, http.MethodGet, PathFirewallAudits, q.Values(), nil, &out)
	return out, err
}

// PublishScan posts a CI report (the JSON of scanners/report.Report).
func (c *Client) PublishScan(ctx context.Context, reportJSON []byte) (ScanSummary, error) {
	var out ScanSummary
	h := http.Header{"Content-Type": {"application/json"}}
	resp, err := c.send(ctx, http.MethodPost, PathScans, nil, h, bytes.NewReader(reportJSON))
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return out, fmt.Errorf("POST %s: decode the console's answer: %w", PathScans, err)
	}
	return out, nil
}

// Scans lists scans, newest first; image and cursor may be empty.
func (c *Client) Scans(ctx context.Context, image, cursor string) (ScanPage, error) {
	q := url.Values{}
	if image != "" {
		q.Set("image", image)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out ScanPage
	err := c.doJSON(ctx, http.MethodGet, PathScans, q, nil, &out)
	return out, err
}

// Scan returns one scan with its report.
func (c *Client) Scan(ctx context.Context, id string) (ScanDetail, error) {
	var out ScanDetail
	err := c.doJSON(ctx, http.MethodGet, PathScans+"/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// PathMetrics serves Prometheus metrics (any role that may read).
const PathMetrics = "/metrics"

// PathOpenAPI serves the OpenAPI document of this API (no credentials needed).
const PathOpenAPI = "/api/v1/openapi.json"

// ImageRules returns the alert rules for images running in tasks and the
// policy revision.
func (c *Client) ImageRules(ctx context.Context) ([]policy.ImageRule, int64, error) {
	var out []policy.ImageRule
	rev, err := c.getRules(ctx, PathImagePolicy, &out)
	return out, rev, err
}

// SetImageRules replaces the image rules; see SetRuntimeRules.
func (c *Client) SetImageRules(ctx context.Context, rules []policy.ImageRule, ifRevision int64) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, PathImagePolicy, rules, ifRevision)
}

// AddImageRule appends an image rule.
func (c *Client) AddImageRule(ctx context.Context, r policy.ImageRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPost, PathImagePolicy, r, 0)
}

// UpdateImageRule replaces the image rule called name.
func (c *Client) UpdateImageRule(ctx context.Context, name string, r policy.ImageRule) (int64, error) {
	return c.writeRules(ctx, http.MethodPut, rulePath(PathImagePolicy, name), r, 0)
}

// DeleteImageRule deletes the image rule called name.
func (c *Client) DeleteImageRule(ctx context.Context, name string) (int64, error) {
	return c.writeRules(ctx, http.MethodDelete, rulePath(PathImagePolicy, name), nil, 0)
}

// DeleteScan removes one scan (admin only).
func (c *Client) DeleteScan(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, PathScans+"/"+url.PathEscape(id), nil, "", nil)
	return err
}
