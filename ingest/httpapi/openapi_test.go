package httpapi

// docs/openapi.json against the server: every route the server registers
// is described and every described route is served, methods and path
// parameters included; the described security matches what the server
// asks (the API token, a setup link's token, or none); and real answers,
// from a real pipeline over the example files, have the documented status
// codes and shapes, with no field left out of the description
// (TestOpenAPIAnswers, in openapi_answers_test.go, which also checks the
// query parameters and accepted JSON bodies it sends).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterd/rosterd/state"
)

const openAPIPath = "../../docs/openapi.json"

// openAPI is the part of an OpenAPI 3.1 document the test reads; every
// schema stays a generic JSON value.
type openAPI struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]any `json:"schemas"`
		Parameters map[string]any `json:"parameters"`
		Responses  map[string]any `json:"responses"`
	} `json:"components"`
	raw any
}

// operation is one method of a path.
type operation struct {
	OperationID string          `json:"operationId"`
	Parameters  []any           `json:"parameters"`
	Security    *[]any          `json:"security"`
	RequestBody json.RawMessage `json:"requestBody"`
	Responses   map[string]any  `json:"responses"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func readOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatalf("read %s: %v", openAPIPath, err)
	}
	var doc openAPI
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s is not valid JSON: %v", openAPIPath, err)
	}
	json.Unmarshal(b, &doc.raw)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("%s: openapi = %q; want 3.1.x", openAPIPath, doc.OpenAPI)
	}
	return &doc
}

// operations returns every described route as "GET /v1/x/{id}".
func (doc *openAPI) operations(t *testing.T) map[string]operation {
	t.Helper()
	out := map[string]operation{}
	for path, item := range doc.Paths {
		for m, raw := range item {
			if !slices.Contains(httpMethods, m) {
				continue // parameters, summary, ...
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s: paths[%q].%s: %v", openAPIPath, path, m, err)
			}
			out[strings.ToUpper(m)+" "+path] = op
		}
	}
	return out
}

// resolve follows a local $ref ("#/components/schemas/X").
func (doc *openAPI) resolve(v any) (any, error) {
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v, nil
		}
		cur := doc.raw
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			next, ok := cur.(map[string]any)[part]
			if !ok {
				return nil, fmt.Errorf("$ref %q does not resolve", ref)
			}
			cur = next
		}
		v = cur
	}
	return nil, fmt.Errorf("$ref chain too long")
}

// securitySchemes returns the names of the security schemes op accepts
// (its own security, else the document's), sorted.
func (doc *openAPI) securitySchemes(op operation) []string {
	reqs := op.Security
	if reqs == nil {
		top, _ := doc.raw.(map[string]any)["security"].([]any)
		reqs = &top
	}
	var out []string
	for _, r := range *reqs {
		for name := range r.(map[string]any) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// servedRoutes returns the server's routes as "GET /v1/x/{id}" (a
// wildcard {name...} written {name}, as OpenAPI writes it).
func servedRoutes(s *Server) map[string]string {
	out := map[string]string{}
	for _, p := range s.Routes() {
		out[strings.ReplaceAll(p, "...}", "}")] = p
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := readOpenAPI(t)
	ops := doc.operations(t)
	db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(Config{DB: db, Token: dirTestToken, Gatherer: prometheus.NewRegistry()})
	served := servedRoutes(s)

	var missing, extra []string
	for route, pattern := range served {
		if _, ok := ops[route]; !ok {
			method, path, _ := strings.Cut(route, " ")
			missing = append(missing, fmt.Sprintf("%s (registered as %q in ingest/httpapi) is not described in docs/openapi.json: add paths[%q].%s", route, pattern, path, strings.ToLower(method)))
		}
	}
	for route := range ops {
		if _, ok := served[route]; !ok {
			method, path, _ := strings.Cut(route, " ")
			extra = append(extra, fmt.Sprintf("docs/openapi.json describes %s (paths[%q].%s), but the server registers no such route", route, path, strings.ToLower(method)))
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, m := range append(missing, extra...) {
		t.Error(m)
	}

	ids := map[string]string{}
	for route, op := range ops {
		method, path, _ := strings.Cut(route, " ")
		// The route answers for real: a request to it reaches its own
		// pattern, not the catch-all 404.
		concrete := pathParam.ReplaceAllString(path, "x")
		req := httptest.NewRequest(method, concrete, nil)
		if _, pattern := s.mux.Handler(req); strings.ReplaceAll(pattern, "...}", "}") != route && served[route] != "" {
			t.Errorf("%s %s is answered by %q; want the route %s", method, concrete, pattern, route)
		}
		// Security as the server has it: /v1 wants the operator's token,
		// except /v1/setup, which refuses it and wants a setup link's;
		// the rest wants none.
		if served[route] != "" {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(method, concrete, nil))
			needsToken := rec.Code == http.StatusUnauthorized
			req := httptest.NewRequest(method, concrete, nil)
			req.Header.Set("Authorization", "Bearer "+dirTestToken)
			rec = httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			refusesOperator := rec.Code == http.StatusUnauthorized
			schemes := doc.securitySchemes(op)
			defined, _ := doc.raw.(map[string]any)["components"].(map[string]any)["securitySchemes"].(map[string]any)
			for _, name := range schemes {
				if defined[name] == nil {
					t.Errorf("%s: security scheme %q is not in components.securitySchemes", route, name)
				}
			}
			switch {
			case !needsToken && len(schemes) > 0:
				t.Errorf("%s answers without a token, but docs/openapi.json requires %v: give it \"security\": []", route, schemes)
			case refusesOperator && !slices.Equal(schemes, []string{"setupLink"}):
				t.Errorf("%s refuses the API token (401 with it); docs/openapi.json gives it the schemes %v; want [setupLink]", route, schemes)
			case needsToken && !refusesOperator && !slices.Equal(schemes, []string{"bearerAuth"}):
				t.Errorf("%s needs the API token (401 without it); docs/openapi.json gives it the schemes %v; want [bearerAuth]", route, schemes)
			}
		}
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", route)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share the operationId %q", route, other, op.OperationID)
		}
		ids[op.OperationID] = route
		if len(op.Responses) == 0 {
			t.Errorf("%s: no responses", route)
		}
		// Every {param} of the path is declared as a path parameter, and
		// nothing else is.
		declared := map[string]bool{}
		for _, p := range op.Parameters {
			p, err := doc.resolve(p)
			if err != nil {
				t.Errorf("%s: %v", route, err)
				continue
			}
			if m, _ := p.(map[string]any); m["in"] == "path" {
				declared[m["name"].(string)] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared in parameters", route, m[1])
			}
			delete(declared, m[1])
		}
		for name := range declared {
			t.Errorf("%s: declares path parameter %q that the path does not have", route, name)
		}
	}
	// Every $ref anywhere resolves.
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"].(string); ok {
				if _, err := doc.resolve(v); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
			for k, x := range v {
				walk(where+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", where, i), x)
			}
		}
	}
	walk("openapi", doc.raw)
}

// schemaCheck checks a JSON value against a schema of the document: types,
// const, enum, required fields, and no field that the schema does not
// describe (where it lists properties and says nothing of others).
func (doc *openAPI) schemaCheck(where string, schema, v any) []string {
	s, err := doc.resolve(schema)
	if err != nil {
		return []string{where + ": " + err.Error()}
	}
	m, ok := s.(map[string]any)
	if !ok {
		return nil
	}
	var errs []string
	for _, sub := range asList(m["allOf"]) {
		errs = append(errs, doc.schemaCheck(where, sub, v)...)
	}
	if alts := append(asList(m["oneOf"]), asList(m["anyOf"])...); len(alts) > 0 {
		var all []string
		ok := false
		for _, sub := range alts {
			e := doc.schemaCheck(where, sub, v)
			ok = ok || len(e) == 0
			all = append(all, e...)
		}
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: matches none of oneOf: %s", where, strings.Join(all, "; ")))
		}
	}
	if c, ok := m["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		errs = append(errs, fmt.Sprintf("%s = %v; want the const %v", where, v, c))
	}
	if enum, ok := m["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) && (e == nil) == (v == nil) }) {
		errs = append(errs, fmt.Sprintf("%s = %v; not one of the enum %v", where, v, enum))
	}
	if typ, ok := m["type"]; ok {
		types := asList(typ)
		if len(types) == 0 {
			types = []any{typ}
		}
		if !slices.ContainsFunc(types, func(t any) bool { return jsonType(v, t.(string)) }) {
			errs = append(errs, fmt.Sprintf("%s = %v; want type %v", where, v, typ))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range asList(m["required"]) {
			if _, ok := v[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required field %q is missing", where, r))
			}
		}
		props, _ := m["properties"].(map[string]any)
		addl, hasAddl := m["additionalProperties"]
		for k, x := range v {
			switch {
			case props[k] != nil:
				errs = append(errs, doc.schemaCheck(where+"."+k, props[k], x)...)
			case hasAddl && addl != false:
				errs = append(errs, doc.schemaCheck(where+"."+k, addl, x)...)
			case props != nil || addl == false:
				errs = append(errs, fmt.Sprintf("%s: field %q is in the answer but not described in docs/openapi.json", where, k))
			}
		}
	case []any:
		if items, ok := m["items"]; ok {
			for i, x := range v {
				errs = append(errs, doc.schemaCheck(fmt.Sprintf("%s[%d]", where, i), items, x)...)
			}
		}
	}
	return errs
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func jsonType(v any, t string) bool {
	switch t {
	case "null":
		return v == nil
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}
