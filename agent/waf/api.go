package waf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/taskguard/taskguard/console/policy"
)

// apiSpec is a rule's compiled OpenAPI 3 document: requests to paths or
// with methods it does not describe, and parameters or bodies that break
// its schemas, are violations.
type apiSpec struct {
	router routers.Router
}

// newAPISpec loads and validates an OpenAPI 3 document (JSON or YAML). The
// document's servers are matched on their path only (the proxy does not
// know the public host names); external references are not followed.
func newAPISpec(spec string) (*apiSpec, error) {
	doc, err := policy.LoadOpenAPI(spec)
	if err != nil {
		return nil, fmt.Errorf("api spec: %w", err)
	}
	for _, s := range doc.Servers {
		s.URL = serverPath(s.URL)
	}
	for _, item := range doc.Paths.Map() {
		for _, s := range item.Servers {
			s.URL = serverPath(s.URL)
		}
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("api spec: %w", err)
	}
	return &apiSpec{router: router}, nil
}

// serverPath keeps the path of a server URL ("https://api.example.com/v1"
// → "/v1").
func serverPath(u string) string {
	if _, rest, ok := strings.Cut(u, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		return "/"
	}
	return u
}

// check validates r (with its body, unless truncated) against the
// document and returns the violation, or "" when r conforms.
func (a *apiSpec) check(ctx context.Context, r *http.Request, body []byte, truncated bool) string {
	route, params, err := a.router.FindRoute(r)
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return fmt.Sprintf("method %s is not described for %s", r.Method, r.URL.Path)
	case err != nil:
		return fmt.Sprintf("path %s is not described in the API", r.URL.Path)
	}
	rq := r.WithContext(ctx) // a shallow copy: the validator only reads it
	rq.Body = io.NopCloser(bytes.NewReader(body))
	rq.ContentLength = int64(len(body))
	err = openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
		Request: rq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			ExcludeRequestBody:  truncated,
			SkipSettingDefaults: true,
		},
	})
	if err == nil {
		return ""
	}
	return truncate(describeAPIError(err), 240)
}

// describeAPIError says what broke the document, without echoing the
// schema (kin-openapi's own messages carry it whole).
func describeAPIError(err error) string {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		var se *openapi3filter.SecurityRequirementsError
		if errors.As(err, &se) {
			return "security requirements not met"
		}
		return err.Error()
	}
	where := "request"
	switch {
	case re.Parameter != nil:
		where = fmt.Sprintf("parameter %q in %s", re.Parameter.Name, re.Parameter.In)
	case re.RequestBody != nil:
		where = "request body"
	}
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		if p := se.JSONPointer(); len(p) > 0 {
			return fmt.Sprintf("%s at /%s: %s", where, strings.Join(p, "/"), se.Reason)
		}
		return where + ": " + se.Reason
	}
	reason := re.Reason
	if reason == "" && re.Err != nil {
		reason = re.Err.Error()
	}
	return where + ": " + reason
}
