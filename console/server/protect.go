package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/fargate"
	"github.com/taskguard/taskguard/console/tlscert"
	"sigs.k8s.io/yaml"
)

// protectParams are the query parameters of the protect endpoints, with the
// seeds' names.
var protectParams = []string{"consoleaddr", "defenderImage", "extractEntrypoint", "agentTokenSecret",
	"include", "exclude", "skipImage", "failClosed", "defenderPlatforms"}

// Serving is how the console serves, for the protect endpoint.
type Serving struct {
	// PlainHTTP: the console runs with --insecure-http.
	PlainHTTP bool
	// Chain is the served certificate chain, leaf first (nil for plain HTTP).
	Chain []*x509.Certificate
}

// Response headers of the protect endpoints: the body stays the task
// definition alone (it registers as is), the report travels beside it.
const (
	HeaderProtected = "X-Taskguard-Protected"
	HeaderSkipped   = "X-Taskguard-Skipped"
	HeaderWarning   = "X-Taskguard-Warning"
)

// list reads a repeatable, comma-separated query parameter.
func list(q url.Values, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func boolParam(q url.Values, key string) (bool, error) {
	v := q.Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: use true or false", key, v)
	}
	return b, nil
}

// protectOptions reads the query into fargate options. Unknown parameters
// are refused so a typo (consoleAddr) is not silently ignored.
func protectOptions(q url.Values) (fargate.Options, error) {
	for k := range q {
		if !slices.Contains(protectParams, k) {
			return fargate.Options{}, fmt.Errorf("unknown query parameter %q: the parameters are %s", k, strings.Join(protectParams, ", "))
		}
	}
	opts := fargate.Options{
		ConsoleAddr:         q.Get("consoleaddr"),
		DefenderImage:       q.Get("defenderImage"),
		AgentTokenSecretARN: q.Get("agentTokenSecret"),
		Include:             list(q, "include"),
		Exclude:             list(q, "exclude"),
		SkipImages:          list(q, "skipImage"),
		DefenderPlatforms:   list(q, "defenderPlatforms"),
	}
	if opts.ConsoleAddr == "" {
		return fargate.Options{}, errors.New("the consoleaddr query parameter is required: the host[:port] (or https://host:port) the defender reports to, e.g. ?consoleaddr=console.example.com:8083")
	}
	for _, p := range opts.DefenderPlatforms {
		if p != fargate.PlatformAMD64 && p != fargate.PlatformARM64 {
			return fargate.Options{}, fmt.Errorf("defenderPlatforms: %q is not %s or %s", p, fargate.PlatformAMD64, fargate.PlatformARM64)
		}
	}
	var err error
	if opts.ExtractEntrypoint, err = boolParam(q, "extractEntrypoint"); err != nil {
		return fargate.Options{}, err
	}
	if opts.FailClosed, err = boolParam(q, "failClosed"); err != nil {
		return fargate.Options{}, err
	}
	if arn := opts.AgentTokenSecretARN; arn != "" && !validSecretARN(arn) {
		return fargate.Options{}, fmt.Errorf("agentTokenSecret=%q is not a Secrets Manager secret or SSM parameter ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)", arn)
	}
	return opts, nil
}

// validSecretARN accepts arn:PARTITION:secretsmanager|ssm:REGION:ACCOUNT:RESOURCE.
func validSecretARN(arn string) bool {
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || !strings.HasPrefix(f[1], "aws") || f[3] == "" || f[4] == "" {
		return false
	}
	switch f[2] {
	case "secretsmanager":
		return strings.HasPrefix(f[5], "secret:") && len(f[5]) > len("secret:")
	case "ssm":
		return strings.HasPrefix(f[5], "parameter/") && len(f[5]) > len("parameter/")
	}
	return false
}

// protectJSON is POST /api/v1/defenders/fargate.json: task definition JSON in,
// protected task definition JSON out.
func (s *Server) protectJSON(w http.ResponseWriter, r *http.Request) {
	s.protect(w, r, "application/json", func(b []byte) ([]byte, error) { return b, nil }, func(b []byte) ([]byte, error) { return b, nil })
}

// protectYAML is the same in YAML (keys come out in alphabetical order).
func (s *Server) protectYAML(w http.ResponseWriter, r *http.Request) {
	s.protect(w, r, "application/yaml", func(b []byte) ([]byte, error) {
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("%w: invalid YAML: %v", fargate.ErrInvalidTask, err)
		}
		return j, nil
	}, yaml.JSONToYAML)
}

func (s *Server) protect(w http.ResponseWriter, r *http.Request, ctype string, in, out func([]byte) ([]byte, error)) {
	opts, err := protectOptions(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	warnings, err := s.consoleTrust(&opts)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := readBody(r)
	if err != nil {
		badBody(w, err)
		return
	}
	js, err := in(body)
	if err != nil {
		s.protectError(w, r, err)
		return
	}
	td, err := fargate.Parse(js)
	if err != nil {
		s.protectError(w, r, err)
		return
	}
	if opts.AgentTokenSecretARN == "" {
		if td.Family() == "" {
			writeError(w, http.StatusBadRequest, `invalid task definition: it has no "family": add the task family's name (ECS needs it, and the defender's credential belongs to it)`)
			return
		}
		// The defender's credential: one agent token per task family.
		if opts.AgentToken, err = s.auth.AgentToken(r.Context(), td.Family()); err != nil {
			s.protectError(w, r, err)
			return
		}
	}
	// The WAF rules that match the task make the defender listen on their
	// external ports, so the protected task maps them.
	pol, err := s.store.Policy(r.Context())
	if err != nil {
		s.internalError(w, r, "read policy", err)
		return
	}
	for _, rule := range pol.WAFForTask(td.Family()) {
		opts.WAFPorts = append(opts.WAFPorts, rule.ExternalPort)
	}
	rep, err := fargate.ProtectReport(r.Context(), td, opts)
	if err != nil {
		s.protectError(w, r, err)
		return
	}
	result, err := td.Indented()
	if err == nil {
		result, err = out(result)
	}
	if err != nil {
		s.internalError(w, r, "encode the protected task", err)
		return
	}
	credential := "agent token"
	if opts.AgentTokenSecretARN != "" {
		credential = "secret ARN"
	}
	warnings = append(warnings, rep.Notes...)
	s.log.Info("task protected", "id", info(r.Context()).id, "by", info(r.Context()).subject, "family", td.Family(),
		"containers", len(td.Containers()), "protected", rep.Protected, "skipped", len(rep.Skipped), "credential", credential,
		"caPEM", opts.ConsoleCAPEM != "", "failClosed", opts.FailClosed, "warnings", warnings)
	w.Header().Set(HeaderProtected, strings.Join(rep.Protected, ", "))
	for _, sk := range rep.Skipped {
		w.Header().Add(HeaderSkipped, sk.Name+": "+sk.Reason)
	}
	for _, warn := range warnings {
		w.Header().Add(HeaderWarning, warn)
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	w.Write(result)
}

// consoleTrust spells the console URL the defender gets (http:// for a
// console serving plain HTTP, https:// otherwise, unless consoleaddr gives a
// scheme) and, when the console serves a certificate the system roots do not
// trust, gives the defender its PEM. It returns warnings: the certificate
// does not cover the address, or the scheme is not the one this console serves.
func (s *Server) consoleTrust(opts *fargate.Options) ([]string, error) {
	u, err := fargate.ConsoleURL(opts.ConsoleAddr, s.serving.PlainHTTP)
	if err != nil {
		return nil, fmt.Errorf("consoleaddr: %w", err)
	}
	opts.ConsoleAddr = u
	parsed, _ := url.Parse(u)
	var warnings []string
	switch {
	case parsed.Scheme == "http" && !s.serving.PlainHTTP:
		warnings = append(warnings, "consoleaddr "+u+" is plain HTTP but this console serves HTTPS: the defender reaches it only through a proxy that serves plain HTTP")
	case parsed.Scheme == "https" && s.serving.PlainHTTP:
		warnings = append(warnings, "consoleaddr "+u+" is HTTPS but this console serves plain HTTP (--insecure-http): the defender reaches it only through a TLS-terminating proxy, whose certificate it must trust")
	case parsed.Scheme == "https" && len(s.serving.Chain) > 0:
		if !tlscert.PubliclyTrusted(s.serving.Chain) {
			opts.ConsoleCAPEM = tlscert.TrustPEM(s.serving.Chain)
		}
		if err := tlscert.CheckCovers(s.serving.Chain[0], parsed.Hostname()); err != nil {
			warnings = append(warnings, err.Error())
		}
	}
	return warnings, nil
}

// protectError answers a failed protection: the task's own problems are the
// caller's (400), an unreachable registry is upstream's (502).
func (s *Server) protectError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, fargate.ErrInvalidTask), errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.Canceled):
		// The caller went away.
	default:
		// With extractEntrypoint the transform reads image configs from registries.
		s.log.Warn("protect failed", "id", info(r.Context()).id, "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
	}
}
