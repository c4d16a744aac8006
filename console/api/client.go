package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls a console. Create it with NewClient; it is safe for concurrent use.
type Client struct {
	base       *url.URL
	httpClient *http.Client
	user, pass string
	token      string
}

// Option configures a Client.
type Option func(*Client)

// WithBasicAuth authenticates every request with a user name and password.
func WithBasicAuth(user, password string) Option {
	return func(c *Client) { c.user, c.pass, c.token = user, password, "" }
}

// WithToken authenticates every request with a bearer token.
func WithToken(token string) Option {
	return func(c *Client) { c.token, c.user, c.pass = token, "", "" }
}

// WithHTTPClient sends requests through hc (for its TLS roots, proxy, timeout).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.httpClient = hc }
}

// WithTLSConfig sends requests over a transport that uses cfg, e.g. with the
// console's self-signed certificate in RootCAs.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		c.httpClient = &http.Client{Transport: tr}
	}
}

// NewClient returns a client of the console at baseURL, e.g.
// "https://console.example.com:8083". A URL without a scheme means https.
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	if !strings.Contains(baseURL, "://") {
		baseURL = "https://" + baseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("console address %q: %w", baseURL, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("console address %q: want https://host[:port]", baseURL)
	}
	c := &Client{base: u, httpClient: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// StatusError is a console answer other than 2xx. Message is the console's
// own error text; RetryAfter is set for 429.
type StatusError struct {
	StatusCode int
	Message    string
	RetryAfter int // seconds, from the Retry-After header
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("console answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("console answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Temporary reports whether the same request may succeed later: the console
// is overloaded or failing (408, 429, 5xx). Any other 4xx says the request
// itself is refused and will be refused again.
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Unauthorized reports whether the console refused the credential: 401 (not
// known, expired, revoked) or 403 (not allowed).
func (e *StatusError) Unauthorized() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// IsStatus reports whether err is a *StatusError with that code.
func IsStatus(err error, code int) bool {
	var e *StatusError
	return errors.As(err, &e) && e.StatusCode == code
}

// Ping checks that the console answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, PathPing, nil, "", nil)
	return err
}

// Authenticate exchanges a user name and password for a bearer token. It
// does not change the client's own credentials: pass the token to WithToken.
func (c *Client) Authenticate(ctx context.Context, user, password string) (AuthenticateResponse, error) {
	var out AuthenticateResponse
	err := c.doJSON(ctx, http.MethodPost, PathAuthenticate, nil, AuthenticateRequest{Username: user, Password: password}, &out)
	return out, err
}

// Users lists the console's users (admin only).
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out []User
	err := c.doJSON(ctx, http.MethodGet, PathUsers, nil, nil, &out)
	return out, err
}

// CreateUser creates a user (admin only).
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (User, error) {
	var out User
	err := c.doJSON(ctx, http.MethodPost, PathUsers, nil, req, &out)
	return out, err
}

// ProtectOptions are the query parameters of the Fargate protect endpoints,
// named as the seeds name them.
type ProtectOptions struct {
	// ConsoleAddr is the host[:port] the defender dials (consoleaddr, required).
	ConsoleAddr string
	// DefenderImage replaces the default defender image (defenderImage).
	DefenderImage string
	// ExtractEntrypoint reads ENTRYPOINT/CMD from the image when a container
	// has no entryPoint (extractEntrypoint=true).
	ExtractEntrypoint bool
	// AgentTokenSecret is a Secrets Manager or SSM parameter ARN holding the
	// defender's credential; the protected task then references it instead of
	// carrying a credential minted by the console (agentTokenSecret).
	AgentTokenSecret string
}

// Query returns the options as URL query parameters.
func (o ProtectOptions) Query() url.Values {
	q := url.Values{}
	q.Set("consoleaddr", o.ConsoleAddr)
	if o.DefenderImage != "" {
		q.Set("defenderImage", o.DefenderImage)
	}
	if o.ExtractEntrypoint {
		q.Set("extractEntrypoint", "true")
	}
	if o.AgentTokenSecret != "" {
		q.Set("agentTokenSecret", o.AgentTokenSecret)
	}
	return q
}

// ProtectFargate sends a task definition (RegisterTaskDefinition JSON or
// DescribeTaskDefinition output) and returns the protected task definition JSON.
func (c *Client) ProtectFargate(ctx context.Context, taskJSON []byte, opts ProtectOptions) ([]byte, error) {
	return c.do(ctx, http.MethodPost, PathFargateJSON, opts.Query(), "application/json", bytes.NewReader(taskJSON))
}

func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, q, ctype, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp, out); err != nil {
		return fmt.Errorf("%s %s: decode the console's answer: %w", method, path, err)
	}
	return nil
}

// maxResponse bounds what the client reads from the console.
const maxResponse = 32 << 20

func (c *Client) do(ctx context.Context, method, path string, q url.Values, ctype string, body io.Reader) ([]byte, error) {
	var h http.Header
	if ctype != "" {
		h = http.Header{"Content-Type": {ctype}}
	}
	resp, err := c.send(ctx, method, path, q, h, body)
	if err != nil {
		return nil, err
	}
	return resp.body, nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request; any answer but 2xx and 304 is a *StatusError.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, h http.Header, body io.Reader) (response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return response{}, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		// *url.Error carries the URL only, never the Authorization header.
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read the console's answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		e := &StatusError{StatusCode: resp.StatusCode}
		var apiErr Error
		if json.Unmarshal(data, &apiErr) == nil {
			e.Message = apiErr.Error
		}
		e.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
		return response{}, e
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}
