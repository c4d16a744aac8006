package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/fargate"
	"sigs.k8s.io/yaml"
)

// protectParams are the query parameters of the protect endpoints, with the
// seeds' names.
var protectParams = []string{"consoleaddr", "defenderImage", "extractEntrypoint", "agentTokenSecret"}

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
	}
	if opts.ConsoleAddr == "" {
		return fargate.Options{}, errors.New("the consoleaddr query parameter is required: the host[:port] the defender reports to, e.g. ?consoleaddr=console.example.com:8083")
	}
	if v := q.Get("extractEntrypoint"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fargate.Options{}, fmt.Errorf("extractEntrypoint=%q: use true or false", v)
		}
		opts.ExtractEntrypoint = b
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
	if err := fargate.Protect(r.Context(), td, opts); err != nil {
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
	s.log.Info("task protected", "id", info(r.Context()).id, "by", info(r.Context()).subject, "family", td.Family(),
		"containers", len(td.Containers()), "credential", credential)
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	w.Write(result)
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
