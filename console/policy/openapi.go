package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// LoadOpenAPI parses and validates the OpenAPI 3 document of a WAF rule's
// API protection (JSON or YAML). External references are not followed: the
// document must be self-contained.
func LoadOpenAPI(spec string) (*openapi3.T, error) {
	if len(spec) > MaxWAFAPISpec {
		return nil, fmt.Errorf("the document is %d bytes, more than %d", len(spec), MaxWAFAPISpec)
	}
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData([]byte(spec))
	if err != nil {
		return nil, fmt.Errorf("not an OpenAPI document: %w", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fmt.Errorf("openapi version %q is not 3.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("invalid OpenAPI document: %w", err)
	}
	return doc, nil
}
