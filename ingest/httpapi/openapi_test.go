package httpapi

// docs/openapi.json against the server: every route the server registers
// is described and every described route is served, methods and path
// parameters included; the described security matches what the server
// asks; and real answers, from a real pipeline over the example files,
// have the documented status codes and shapes, with no field left out of
// the description.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/ingest"
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
	OperationID string         `json:"operationId"`
	Parameters  []any          `json:"parameters"`
	Security    *[]any         `json:"security"`
	Responses   map[string]any `json:"responses"`
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
		// Security as the server has it: /v1 wants the token, the rest not.
		if served[route] != "" {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(method, concrete, nil))
			needsToken := rec.Code == http.StatusUnauthorized
			open := op.Security != nil && len(*op.Security) == 0
			switch {
			case needsToken && open:
				t.Errorf("%s needs the bearer token (401 without it), but docs/openapi.json gives it \"security\": []", route)
			case !needsToken && !open:
				t.Errorf("%s answers %d without a token, but docs/openapi.json requires the bearer token: give it \"security\": []", route, rec.Code)
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

// TestOpenAPIAnswers sends real requests to a server with a real pipeline
// over the example files and checks each answer against the described
// operation: the status is one it lists, and the JSON body has the shape
// of the schema given for that status.
func TestOpenAPIAnswers(t *testing.T) {
	doc := readOpenAPI(t)
	ops := doc.operations(t)
	root := t.TempDir()
	db, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	orgs := filepath.Join(root, "orgs")
	p, err := ingest.New(ingest.Config{DB: db, OrgsRoot: orgs, Defaults: ingest.Defaults{Settle: 0, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done; db.Close() }()
	s := New(Config{DB: db, Token: dirTestToken, OrgsRoot: orgs, Pipeline: p, Gatherer: prometheus.NewRegistry(),
		Daemon: func() DaemonInfo {
			return DaemonInfo{Version: "v1.0.0", StartedAt: time.Now(), Listeners: []Listener{{"sftp", "127.0.0.1:2022"}, {"http", "127.0.0.1:8080"}}}
		}})
	srv := httptest.NewServer(s)
	defer srv.Close()

	checked := map[string]bool{}
	call := func(method, path, contentType string, body []byte, wantStatus int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+dirTestToken)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s = %d %s; want %d", method, path, resp.StatusCode, raw, wantStatus)
		}
		_, pattern := s.mux.Handler(httptest.NewRequest(method, path, nil))
		route := strings.ReplaceAll(pattern, "...}", "}")
		op, ok := ops[route]
		if !ok {
			t.Errorf("%s %s: route %q is not described", method, path, route)
			return raw
		}
		checked[route] = true
		r, ok := op.Responses[fmt.Sprint(resp.StatusCode)]
		if !ok {
			t.Errorf("%s %s answered %d, which docs/openapi.json does not list for %s", method, path, resp.StatusCode, route)
			return raw
		}
		r, err = doc.resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		content, _ := r.(map[string]any)["content"].(map[string]any)
		js, _ := content["application/json"].(map[string]any)
		if js == nil {
			if len(bytes.TrimSpace(raw)) > 0 && content == nil {
				t.Errorf("%s %s: a body, but docs/openapi.json describes none for %d", method, path, resp.StatusCode)
			}
			return raw
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v", method, path, err)
		}
		for _, e := range doc.schemaCheck(fmt.Sprintf("%s %s (%d)", method, path, resp.StatusCode), js["schema"], v) {
			t.Error(e)
		}
		return raw
	}

	// An organization with the example files applied.
	call("POST", "/v1/organizations", "application/json", []byte(`{"name":"acme","settings":{"inactive_users":"keep"}}`), 201)
	call("POST", "/v1/organizations", "application/json", []byte(`{"name":"acme"}`), 409)
	for _, name := range []string{"users.csv", "groups.csv", "user_groups.csv"} {
		b, err := os.ReadFile(filepath.Join("../../examples/csv/valid", name))
		if err != nil {
			t.Fatal(err)
		}
		placeFile(t, filepath.Join(orgs, "acme"), name, string(b))
	}
	var batchID string
	deadline := time.Now().Add(20 * time.Second)
	for batchID == "" {
		var page batchPage
		dirGet(t, srv, "GET", "/v1/organizations/acme/batches", &page)
		if len(page.Data) > 0 && page.Data[0].Status == state.BatchApplied && page.Data[0].Counts.Memberships > 0 {
			batchID = page.Data[0].ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example files were not applied: %+v", page.Data)
		}
		time.Sleep(10 * time.Millisecond)
	}

	call("GET", "/healthz", "", nil, 200)
	call("GET", "/readyz", "", nil, 200)
	call("GET", "/metrics", "", nil, 200)
	call("GET", "/v1/status", "", nil, 200)
	call("GET", "/v1/organizations", "", nil, 200)
	call("GET", "/v1/organizations?limit=0", "", nil, 400)
	call("GET", "/v1/organizations/acme", "", nil, 200)
	call("GET", "/v1/organizations/nope", "", nil, 404)
	call("PATCH", "/v1/organizations/acme", "application/json", []byte(`{"settings":{"settle":"0s","users_patterns":["users_*.csv"],"delete_threshold_percent":null}}`), 200)
	call("PATCH", "/v1/organizations/acme", "application/json", []byte(`{"settings":{"nope":1}}`), 400)

	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " hr@acme"
	body, _ := json.Marshal(map[string]string{"public_key": key})
	call("POST", "/v1/organizations/acme/keys", "application/json", body, 201)
	call("POST", "/v1/organizations/acme/keys", "application/json", []byte(`{"public_key":"nope"}`), 400)
	call("GET", "/v1/organizations/acme/keys", "", nil, 200)
	call("DELETE", "/v1/organizations/acme/keys/"+strings.ReplaceAll(strings.ReplaceAll(ssh.FingerprintSHA256(sshPub), "/", "%2F"), "+", "%2B"), "", nil, 204)

	call("GET", "/v1/organizations/acme/users", "", nil, 200)
	call("GET", "/v1/organizations/acme/users?state=inactive", "", nil, 200)
	call("GET", "/v1/organizations/acme/users?state=gone", "", nil, 400)
	call("GET", "/v1/organizations/acme/users/E1001", "", nil, 200)
	call("GET", "/v1/organizations/acme/users/nope", "", nil, 404)
	call("GET", "/v1/organizations/acme/users/E1001/groups", "", nil, 200)
	call("GET", "/v1/organizations/acme/groups", "", nil, 200)
	call("GET", "/v1/organizations/acme/groups/G-ENG", "", nil, 200)
	call("GET", "/v1/organizations/acme/groups/G-ENG/users", "", nil, 200)
	call("GET", "/v1/organizations/acme/batches", "", nil, 200)
	call("GET", "/v1/organizations/acme/batches/"+batchID, "", nil, 200)
	call("POST", "/v1/organizations/acme/batches/"+batchID+"/approve", "", nil, 409)
	call("GET", "/v1/organizations/acme/audit?order=asc", "", nil, 200)
	call("GET", "/v1/organizations/acme/audit?order=up", "", nil, 400)
	call("GET", "/v1/events?organization_id=acme&limit=1000", "", nil, 200)
	call("GET", "/v1/webhooks", "", nil, 503)
	call("GET", "/v1/webhooks/x/failed", "", nil, 503)
	call("POST", "/v1/events/x/redeliver", "", nil, 503)

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("users", "export.csv")
	fmt.Fprint(fw, "user_id,email,first_name,last_name\nE1,a@example.com,A,B\n")
	mw.Close()
	call("POST", "/v1/organizations/acme/plan", mw.FormDataContentType(), buf.Bytes(), 200)
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	fw, _ = mw.CreateFormFile("file", "export.csv")
	fmt.Fprint(fw, "user_id\n")
	mw.Close()
	call("POST", "/v1/organizations/acme/plan", mw.FormDataContentType(), buf.Bytes(), 400)

	// Exports as they come: a mapping, a compressed plan, OpenPGP keys.
	call("PATCH", "/v1/organizations/acme", "application/json", []byte(`{"settings":{"columns":{"Employee ID":"user_id"},"status_values":{"Terminated":"inactive"},"date_format":"MM/DD/YYYY","require_signature":false}}`), 200)
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	fw, _ = mw.CreateFormFile("file", "users.csv.gz")
	zw := gzip.NewWriter(fw)
	fmt.Fprint(zw, "Employee ID,email,first_name,last_name,status\nE1,a@example.com,A,B,Terminated\n")
	zw.Close()
	mw.WriteField("mapping", `{"columns":{"Employee ID":"user_id"},"status_values":{"Terminated":"inactive"}}`)
	mw.Close()
	call("POST", "/v1/organizations/acme/plan", mw.FormDataContentType(), buf.Bytes(), 200)
	call("GET", "/v1/organizations/acme/pgp", "", nil, 200)
	pgpInfo := call("POST", "/v1/organizations/acme/pgp", "application/json", []byte(`{"algorithm":"ecc"}`), 201)
	call("POST", "/v1/organizations/acme/pgp", "application/json", nil, 200)
	var info ingest.PGPInfo
	json.Unmarshal(pgpInfo, &info)
	signer, _ := json.Marshal(map[string]string{"public_key": info.Keys[0].PublicKey})
	call("POST", "/v1/organizations/acme/pgp/signers", "application/json", signer, 201)
	call("POST", "/v1/organizations/acme/pgp/signers", "application/json", []byte(`{"public_key":"nope"}`), 400)
	call("DELETE", "/v1/organizations/acme/pgp/signers/"+info.Keys[0].Fingerprint, "", nil, 204)

	call("POST", "/v1/organizations", "application/json", []byte(`{"name":"globex"}`), 201)
	call("DELETE", "/v1/organizations/globex", "", nil, 204)

	for route := range servedRoutes(s) {
		if !checked[route] {
			t.Errorf("%s: no request of this test reaches it; add one, so its answers are checked against docs/openapi.json", route)
		}
	}
}
