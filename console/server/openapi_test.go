package server

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
)

// The OpenAPI document lists exactly the routes the server serves, with the
// right authentication, and every reference in it resolves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	inDoc := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			key := strings.ToUpper(method) + " " + path
			inDoc[key] = true
			var o struct {
				Security *[]any `json:"security"`
			}
			json.Unmarshal(raw, &o)
			for _, rt := range (&Server{}).routes() {
				if rt.method+" "+rt.path == key && (rt.perm == "") != (o.Security != nil && len(*o.Security) == 0) {
					t.Errorf("%s: the document and the route disagree on whether credentials are needed", key)
				}
			}
		}
	}
	var missing []string
	for _, rt := range (&Server{}).routes() {
		if rt.page {
			continue
		}
		key := rt.method + " " + rt.path
		if !inDoc[key] {
			missing = append(missing, key)
		}
		delete(inDoc, key)
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.json:\n%s", strings.Join(missing, "\n"))
	}
	for extra := range inDoc {
		t.Errorf("openapi.json documents %s, which the server does not serve", extra)
	}
	for _, m := range regexp.MustCompile(`"#/components/schemas/([A-Za-z]+)"`).FindAllSubmatch(openAPI, -1) {
		if _, ok := doc.Components.Schemas[string(m[1])]; !ok {
			t.Errorf("openapi.json refers to the undefined schema %s", m[1])
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	r := e.do("GET", api.PathOpenAPI, "", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" || !strings.Contains(r.body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
}
