package httpapi

// TestOpenAPIAnswers: real answers against docs/openapi.json (the
// document's reading and the schema check are in openapi_test.go).

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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

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

	// A receiver that refuses every event, for a server with webhook
	// delivery: the endpoint's lag then shows the retry of the first
	// event (an endpoint starts with the events committed after it is
	// first seen, so the deliverer starts before the files come).
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer recv.Close()
	d, err := webhook.New(webhook.Config{DB: db, Endpoints: []webhook.Endpoint{{ID: "wh_refuses", URL: recv.URL, Secret: webhook.GenerateSecret()}},
		Schedule: []time.Duration{time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- d.Run(wctx) }()
	defer func() { wcancel(); <-wdone }()

	// target is a server and the bearer token its requests carry.
	type target struct {
		s     *Server
		url   string
		token string
	}
	checked := map[string]bool{}
	request := func(to target, method, path, contentType string, body []byte, wantStatus int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, to.url+path, bytes.NewReader(body))
		if to.token != "" {
			req.Header.Set("Authorization", "Bearer "+to.token)
		}
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
		_, pattern := to.s.mux.Handler(httptest.NewRequest(method, path, nil))
		route := strings.ReplaceAll(pattern, "...}", "}")
		op, ok := ops[route]
		if !ok {
			t.Errorf("%s %s: route %q is not described", method, path, route)
			return raw
		}
		checked[route] = true
		// Every query parameter sent is described.
		for name := range req.URL.Query() {
			if !slices.ContainsFunc(op.Parameters, func(p any) bool {
				p, _ = doc.resolve(p)
				m, _ := p.(map[string]any)
				return m["in"] == "query" && m["name"] == name
			}) {
				t.Errorf("%s %s: query parameter %q is not described for %s", method, path, name, route)
			}
		}
		// A JSON body the server accepted has the described shape.
		if len(body) > 0 && contentType == "application/json" && resp.StatusCode < 300 {
			var rb struct {
				Content map[string]struct {
					Schema any `json:"schema"`
				} `json:"content"`
			}
			json.Unmarshal(op.RequestBody, &rb)
			var v any
			json.Unmarshal(body, &v)
			if js, ok := rb.Content["application/json"]; !ok {
				t.Errorf("%s %s: a JSON request body, but docs/openapi.json describes none for %s", method, path, route)
			} else {
				for _, e := range doc.schemaCheck(fmt.Sprintf("%s %s (request body)", method, path), js.Schema, v) {
					t.Error(e)
				}
			}
		}
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
	operator := target{s, srv.URL, dirTestToken}
	call := func(method, path, contentType string, body []byte, wantStatus int) []byte {
		t.Helper()
		return request(operator, method, path, contentType, body, wantStatus)
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
	call("DELETE", "/v1/organizations/acme/keys/"+pathFP(sshPub), "", nil, 204)

	call("GET", "/v1/organizations/acme/users", "", nil, 200)
	call("GET", "/v1/organizations/acme/users?email=ZOE.MULLER@example.com", "", nil, 200)
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
	call("GET", "/v1/events?since=2000-01-01T00:00:00Z", "", nil, 200)
	call("GET", "/v1/events?since=yesterday", "", nil, 400)
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

	// Setup links, and the routes a link opens with its own token.
	var link, creating SetupLinkView
	json.Unmarshal(call("POST", "/v1/organizations/acme/setup_links", "application/json", []byte(`{"expires_in":"7d"}`), 201), &link)
	call("POST", "/v1/organizations/acme/setup_links", "application/json", []byte(`{"expires_in":"100d"}`), 400)
	call("POST", "/v1/organizations/nope/setup_links", "", nil, 404)
	json.Unmarshal(call("POST", "/v1/organizations/initech/setup_links", "application/json", []byte(`{"expires_in":"36h","create_organization":true}`), 201), &creating)
	call("GET", "/v1/organizations/acme/setup_links", "", nil, 200)
	call("GET", "/v1/organizations/initech/setup_links", "", nil, 200)
	call("GET", "/v1/organizations/nope/setup_links", "", nil, 404)
	call("DELETE", "/v1/organizations/acme/setup_links/sl_nope", "", nil, 404)

	admin := target{s, srv.URL, link.Token}
	request(operator, "GET", "/v1/setup", "", nil, 401)
	pub, _, _ = ed25519.GenerateKey(rand.Reader)
	adminKey, _ := ssh.NewPublicKey(pub)
	body, _ = json.Marshal(map[string]string{"public_key": string(ssh.MarshalAuthorizedKey(adminKey))})
	request(admin, "POST", "/v1/setup/keys", "application/json", body, 201)
	request(admin, "POST", "/v1/setup/keys", "application/json", []byte(`{"public_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}`), 400)
	// A login with that key and an upload, as sftpd records them.
	err = db.AppendAudit([]state.AuditRecord{
		{Org: "acme", Time: time.Now(), Event: "session.start", RemoteAddr: "192.0.2.1:50000", KeyFP: ssh.FingerprintSHA256(adminKey), Session: "s1"},
		{Org: "acme", Time: time.Now(), Event: "upload", RemoteAddr: "192.0.2.1:50000", KeyFP: ssh.FingerprintSHA256(adminKey), Session: "s1",
			File: "users.csv", Bytes: 1234, SHA256: strings.Repeat("ab", 32), Duration: 15 * time.Millisecond},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// SPEC §5 records as the pipeline leaves them: a batch waiting for a
	// retry, one that only set files aside, and a newer one that
	// supersedes the waiting batch and takes over its file.
	now := time.Now().UTC()
	waiting := state.Batch{ID: ulid.Make().String(), Org: "acme", Status: state.BatchPending,
		Files: []state.BatchFile{{Name: "users_1.csv", Kind: "users", Size: 40, ModTime: now, CompletedAt: now}}}
	if _, err := db.FormBatch(waiting, nil); err != nil {
		t.Fatal(err)
	}
	retryAt := now.Add(time.Minute)
	waiting.Attempts, waiting.LastError, waiting.RetryAt = 1, "archive users_1.csv: write /data/archive/acme/x/users_1.csv: no space left on device", &retryAt
	if err := db.RecordFailure(waiting, nil); err != nil {
		t.Fatal(err)
	}
	aside := state.Batch{ID: ulid.Make().String(), Org: "acme",
		Ignored: []state.BatchFile{{Name: "users_0.csv", Kind: "users", Size: 40, ModTime: now, CompletedAt: now.Add(-time.Hour)}}}
	var asideRep bytes.Buffer
	(&report.Report{Version: report.Version, BatchID: aside.ID, OrganizationID: "acme", Status: state.BatchIgnored, CreatedAt: now,
		Notes: []string{"users_0.csv was ignored: a users file that completed later was processed before it."}}).WriteJSON(&asideRep)
	if err := db.RecordSetAside(aside, asideRep.Bytes()); err != nil {
		t.Fatal(err)
	}
	var waitingAnswer, adminAnswer struct {
		Attempts  int        `json:"attempts"`
		LastError string     `json:"last_error"`
		RetryAt   *time.Time `json:"retry_at"`
	}
	json.Unmarshal(call("GET", "/v1/organizations/acme/batches/"+waiting.ID, "", nil, 200), &waitingAnswer)
	if waitingAnswer.Attempts != 1 || waitingAnswer.LastError == "" || waitingAnswer.RetryAt == nil {
		t.Errorf("GET the waiting batch = %+v; want its attempt, last error and retry time", waitingAnswer)
	}
	json.Unmarshal(request(admin, "GET", "/v1/setup/batches/"+waiting.ID, "", nil, 200), &adminAnswer)
	if adminAnswer.Attempts != 1 || adminAnswer.LastError != "" {
		t.Errorf("GET /v1/setup/batches/(waiting) = %+v; want the attempt without the server's error", adminAnswer)
	}
	if raw := request(admin, "GET", "/v1/setup", "", nil, 200); bytes.Contains(raw, []byte("no space left")) {
		t.Errorf("GET /v1/setup shows the server's error to the admin: %s", raw)
	}
	call("GET", "/v1/organizations/acme/batches/"+aside.ID, "", nil, 200)
	newer := state.Batch{ID: ulid.Make().String(), Org: "acme", Status: state.BatchPending,
		Files: []state.BatchFile{{Name: "users_1.csv", Kind: "users", Size: 40, SHA256: strings.Repeat("cd", 32), ModTime: now, CompletedAt: now, ChangeTime: now, From: waiting.ID,
			ArchivePath: "from/" + waiting.ID + "/users_1.csv"}}}
	if _, err := db.FormBatch(newer, nil); err != nil {
		t.Fatal(err)
	}
	call("GET", "/v1/organizations/acme/batches/"+newer.ID, "", nil, 200)
	call("GET", "/v1/organizations/acme/batches/"+waiting.ID, "", nil, 200)
	call("GET", "/v1/organizations/acme/batches", "", nil, 200)
	request(admin, "GET", "/v1/setup", "", nil, 200)
	request(admin, "GET", "/v1/setup/batches/"+batchID, "", nil, 200)
	request(admin, "GET", "/v1/setup/batches/nope", "", nil, 404)
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	fw, _ = mw.CreateFormFile("file", "users.csv")
	fmt.Fprint(fw, "user_id,email,first_name,last_name\nE1,a@example.com,A,B\n")
	mw.Close()
	request(admin, "POST", "/v1/setup/plan", mw.FormDataContentType(), buf.Bytes(), 200)
	request(admin, "POST", "/v1/setup/plan", "text/plain", []byte("users"), 400)
	call("GET", "/v1/organizations/acme/keys", "", nil, 200)
	call("GET", "/v1/organizations/acme/summary", "", nil, 200)
	call("GET", "/v1/organizations/nope/summary", "", nil, 404)
	call("GET", "/v1/organizations/acme/audit", "", nil, 200)
	request(admin, "DELETE", "/v1/setup/keys/"+pathFP(adminKey), "", nil, 204)
	request(admin, "DELETE", "/v1/setup/keys/"+pathFP(adminKey), "", nil, 404)
	call("DELETE", "/v1/organizations/acme/setup_links/"+link.ID, "", nil, 200)
	request(admin, "GET", "/v1/setup", "", nil, 410)
	request(target{s, srv.URL, creating.Token}, "GET", "/v1/setup", "", nil, 200)
	call("GET", "/v1/organizations/initech/setup_links", "", nil, 200)

	// Webhook delivery, with the endpoint retrying the first event.
	d.Wake("acme")
	deadline = time.Now().Add(20 * time.Second)
	for {
		eps, err := d.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) == 1 && len(eps[0].Lag) > 0 && eps[0].Lag[0].Attempts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the endpoint did not retry an event: %+v", eps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ws := New(Config{DB: db, Token: dirTestToken, Deliverer: d})
	wsrv := httptest.NewServer(ws)
	defer wsrv.Close()
	hooks := target{ws, wsrv.URL, dirTestToken}
	var events struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal(request(hooks, "GET", "/v1/events?organization_id=acme&limit=1", "", nil, 200), &events)
	if len(events.Data) != 1 {
		t.Fatalf("GET /v1/events?organization_id=acme&limit=1: %d events; want 1", len(events.Data))
	}
	request(hooks, "GET", "/v1/webhooks", "", nil, 200)
	request(hooks, "GET", "/v1/status", "", nil, 200)
	request(hooks, "GET", "/v1/webhooks/wh_refuses/failed", "", nil, 200)
	request(hooks, "GET", "/v1/webhooks/nope/failed", "", nil, 404)
	request(hooks, "POST", "/v1/events/"+events.Data[0].ID+"/redeliver", "", nil, 200)
	request(hooks, "POST", "/v1/events/nope/redeliver", "", nil, 404)

	for route := range servedRoutes(s) {
		if !checked[route] {
			t.Errorf("%s: no request of this test reaches it; add one, so its answers are checked against docs/openapi.json", route)
		}
	}
}

// pathFP is a key's fingerprint as a path segment (/ is %2F, + is %2B).
func pathFP(k ssh.PublicKey) string {
	return strings.NewReplacer("/", "%2F", "+", "%2B").Replace(ssh.FingerprintSHA256(k))
}
