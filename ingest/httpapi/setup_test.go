package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state"
)

// call sends a request with the given bearer token and JSON body (nil:
// none), decodes a JSON answer into out (when not nil) and returns the
// status.
func call(t *testing.T, srv *httptest.Server, token, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// setupServer is an API over a real bbolt file with organizations acme and
// globex, each holding one key the operator added; logs go to the
// returned buffer.
func setupServer(t *testing.T) (srv *httptest.Server, db *state.DB, orgs string, logs *bytes.Buffer, opKeys map[string]string) {
	t.Helper()
	orgs = filepath.Join(t.TempDir(), "orgs")
	logs = &bytes.Buffer{}
	srv, db = dirTestServer(t, Config{OrgsRoot: orgs, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	opKeys = map[string]string{}
	for _, org := range []string{"acme", "globex"} {
		k := sftptest.GenerateKey(t, t.TempDir(), "op")
		var created Organization
		if st := call(t, srv, dirTestToken, "POST", "/v1/organizations", map[string]string{"name": org, "public_key": string(k.AuthorizedKey)}, &created); st != http.StatusCreated {
			t.Fatalf("create %s = %d", org, st)
		}
		opKeys[org] = ssh.FingerprintSHA256(k.Public)
	}
	return srv, db, orgs, logs, opKeys
}

func newLink(t *testing.T, srv *httptest.Server, org string, body any) SetupLinkView {
	t.Helper()
	var l SetupLinkView
	if st := call(t, srv, dirTestToken, "POST", "/v1/organizations/"+org+"/setup_links", body, &l); st != http.StatusCreated {
		t.Fatalf("create setup link for %s = %d", org, st)
	}
	return l
}

type keyList struct {
	Data []KeyView `json:"data"`
}

func fingerprints(keys []KeyView) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Fingerprint)
	}
	return out
}

func TestSetupLinkLifecycle(t *testing.T) {
	srv, db, _, logs, _ := setupServer(t)
	l := newLink(t, srv, "acme", nil)
	if l.Token == "" || !strings.HasSuffix(l.URL, "/setup/"+l.Token) || !strings.HasPrefix(l.URL, srv.URL) ||
		l.Status != "active" || l.ExpiresAt.Sub(l.CreatedAt) != DefaultSetupLinkTTL {
		t.Fatalf("created link = %+v; want a token, its URL and a 7-day expiry", l)
	}
	var list List[SetupLinkView]
	call(t, srv, dirTestToken, "GET", "/v1/organizations/acme/setup_links", nil, &list)
	if len(list.Data) != 1 || list.Data[0].Token != "" || list.Data[0].URL != "" || list.Data[0].ID != l.ID {
		t.Fatalf("listed links = %+v; want the link without its token", list.Data)
	}

	var v SetupView
	if st := call(t, srv, l.Token, "GET", "/v1/setup", nil, &v); st != http.StatusOK || v.Organization.ID != "acme" || v.Link.ID != l.ID {
		t.Fatalf("GET /v1/setup = %d %+v", st, v)
	}
	// Neither token opens the other's routes.
	if st := call(t, srv, dirTestToken, "GET", "/v1/setup", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("GET /v1/setup with the API token = %d; want 401", st)
	}
	if st := call(t, srv, l.Token, "GET", "/v1/organizations/acme", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("GET /v1/organizations/acme with a setup token = %d; want 401", st)
	}
	// A well-formed token that is not the link's: its last character
	// changed (one of 16 values, so "A" alone is the same token once in 16).
	wrong := l.Token[:42] + "A"
	if wrong == l.Token {
		wrong = l.Token[:42] + "E"
	}
	if st := call(t, srv, wrong, "GET", "/v1/setup", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("GET /v1/setup with a wrong token = %d; want 401", st)
	}

	var revoked SetupLinkView
	if st := call(t, srv, dirTestToken, "DELETE", "/v1/organizations/acme/setup_links/"+l.ID, nil, &revoked); st != http.StatusOK || revoked.Status != "revoked" {
		t.Fatalf("revoke = %d %+v", st, revoked)
	}
	var e errorBody
	if st := call(t, srv, l.Token, "GET", "/v1/setup", nil, &e); st != http.StatusGone || e.Error.Code != "setup_link_revoked" {
		t.Fatalf("GET /v1/setup after revocation = %d %+v; want 410 setup_link_revoked", st, e)
	}
	if st := call(t, srv, dirTestToken, "DELETE", "/v1/organizations/globex/setup_links/"+l.ID, nil, nil); st != http.StatusNotFound {
		t.Errorf("revoke through another organization = %d; want 404", st)
	}

	recs, err := db.AuditRecords("acme", "", 0, state.OldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, r := range recs {
		if r.SetupLink != l.ID {
			t.Errorf("audit record %+v: setup_link = %q; want %q", r, r.SetupLink, l.ID)
		}
		events = append(events, r.Event+" "+r.Reason)
	}
	want := []string{"setup_link.created expires " + l.ExpiresAt.Format(time.RFC3339), "setup.open ", "setup_link.revoked ", "setup.refused revoked"}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("audit trail = %q; want %q", events, want)
	}
	if strings.Contains(logs.String(), l.Token) || strings.Contains(logs.String(), l.Token[:20]) {
		t.Errorf("the token is in the log:\n%s", logs)
	}
}

func TestSetupLinkExpiresIn(t *testing.T) {
	srv, _, _, _, _ := setupServer(t)
	for _, tc := range []struct {
		in     string
		status int
		ttl    time.Duration
	}{
		{"7d", 201, 7 * 24 * time.Hour},
		{"36h", 201, 36 * time.Hour},
		{"0.5d", 201, 12 * time.Hour},
		{"90d", 201, 90 * 24 * time.Hour},
		{"91d", 400, 0},
		{"0s", 400, 0},
		{"-1h", 400, 0},
		{"soon", 400, 0},
	} {
		var l SetupLinkView
		st := call(t, srv, dirTestToken, "POST", "/v1/organizations/acme/setup_links", map[string]string{"expires_in": tc.in}, &l)
		if st != tc.status || (st == 201 && l.ExpiresAt.Sub(l.CreatedAt) != tc.ttl) {
			t.Errorf("expires_in %q = %d, lifetime %v; want %d, %v", tc.in, st, l.ExpiresAt.Sub(l.CreatedAt), tc.status, tc.ttl)
		}
	}
	if st := call(t, srv, dirTestToken, "POST", "/v1/organizations/nope/setup_links", nil, nil); st != http.StatusNotFound {
		t.Errorf("link for an unknown organization = %d; want 404", st)
	}
	if st := call(t, srv, dirTestToken, "POST", "/v1/organizations/Bad_Name/setup_links", map[string]bool{"create_organization": true}, nil); st != http.StatusBadRequest {
		t.Errorf("link creating an organization with a bad name = %d; want 400", st)
	}
}

// TestSetupLinkReachesOneOrganization: a link works for its organization
// only, and its admin sees and removes only the keys added through setup
// links unless setup_all_keys allows the operator's.
func TestSetupLinkReachesOneOrganization(t *testing.T) {
	srv, db, _, _, opKeys := setupServer(t)
	l := newLink(t, srv, "acme", nil)
	var v SetupView
	call(t, srv, l.Token, "GET", "/v1/setup", nil, &v)
	if len(v.Keys) != 0 || v.AllKeys {
		t.Fatalf("keys visible to the admin = %v; want none (the operator's key is hidden)", fingerprints(v.Keys))
	}

	admin := sftptest.GenerateKey(t, t.TempDir(), "admin")
	var added keyList
	if st := call(t, srv, l.Token, "POST", "/v1/setup/keys", map[string]string{"public_key": string(admin.AuthorizedKey)}, &added); st != http.StatusCreated ||
		len(added.Data) != 1 || added.Data[0].AddedBy != state.KeyAddedBySetupLink || added.Data[0].SetupLink != l.ID {
		t.Fatalf("POST /v1/setup/keys = %d %+v", st, added)
	}
	adminFP := ssh.FingerprintSHA256(admin.Public)
	var opList keyList
	call(t, srv, dirTestToken, "GET", "/v1/organizations/acme/keys", nil, &opList)
	byFP := map[string]KeyView{}
	for _, k := range opList.Data {
		byFP[k.Fingerprint] = k
	}
	if len(opList.Data) != 2 || byFP[adminFP].AddedBy != state.KeyAddedBySetupLink || byFP[opKeys["acme"]].AddedBy != state.KeyAddedByOperator {
		t.Fatalf("operator's key list = %+v; want the operator's key and the admin's, each with who added it", opList.Data)
	}

	for _, tc := range []struct{ what, fp string }{
		{"another organization's key", opKeys["globex"]},
		{"the operator's key", opKeys["acme"]},
	} {
		if st := call(t, srv, l.Token, "DELETE", "/v1/setup/keys/"+tc.fp, nil, nil); st != http.StatusNotFound {
			t.Errorf("admin removes %s = %d; want 404", tc.what, st)
		}
	}
	for org, fp := range opKeys {
		if ok, _ := db.HasKey(org, fp); !ok {
			t.Errorf("%s lost its operator key", org)
		}
	}
	var other SetupView
	call(t, srv, l.Token, "GET", "/v1/setup", nil, &other)
	if other.Organization.ID != "acme" {
		t.Errorf("the link opened %q", other.Organization.ID)
	}

	// setup_all_keys lets the admin see and remove the operator's key.
	if st := call(t, srv, dirTestToken, "PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"setup_all_keys": true}}, nil); st != http.StatusOK {
		t.Fatalf("PATCH setup_all_keys = %d", st)
	}
	call(t, srv, l.Token, "GET", "/v1/setup", nil, &v)
	if len(v.Keys) != 2 || !v.AllKeys {
		t.Fatalf("keys visible with setup_all_keys = %v; want both", fingerprints(v.Keys))
	}
	if st := call(t, srv, l.Token, "DELETE", "/v1/setup/keys/"+opKeys["acme"], nil, nil); st != http.StatusNoContent {
		t.Errorf("admin removes the operator's key with setup_all_keys = %d; want 204", st)
	}
	if st := call(t, srv, l.Token, "DELETE", "/v1/setup/keys/"+opKeys["globex"], nil, nil); st != http.StatusNotFound {
		t.Errorf("admin removes globex's key with setup_all_keys = %d; want 404", st)
	}
	if ok, _ := db.HasKey("globex", opKeys["globex"]); !ok {
		t.Error("globex lost its key")
	}
}

func TestSetupLinkRefusedChangesNothing(t *testing.T) {
	srv, db, orgs, _, _ := setupServer(t)
	expired := newLink(t, srv, "newco", map[string]any{"expires_in": "1ms", "create_organization": true})
	revoked := newLink(t, srv, "acme", nil)
	call(t, srv, dirTestToken, "DELETE", "/v1/organizations/acme/setup_links/"+revoked.ID, nil, nil)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(expired.ExpiresAt) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	key := sftptest.GenerateKey(t, t.TempDir(), "k")
	for _, tc := range []struct {
		link SetupLinkView
		code string
	}{{expired, "setup_link_expired"}, {revoked, "setup_link_revoked"}} {
		var e errorBody
		if st := call(t, srv, tc.link.Token, "POST", "/v1/setup/keys", map[string]string{"public_key": string(key.AuthorizedKey)}, &e); st != http.StatusGone || e.Error.Code != tc.code {
			t.Errorf("POST key with an unusable link = %d %+v; want 410 %s", st, e, tc.code)
		}
	}
	if _, err := db.Org("newco"); err == nil {
		t.Error("an expired link created its organization")
	}
	if _, err := os.Stat(filepath.Join(orgs, "newco")); err == nil {
		t.Error("an expired link created its organization's folder")
	}
	keys, _ := db.Keys("acme")
	if len(keys) != 1 {
		t.Errorf("acme has %d keys after refused uses; want 1", len(keys))
	}
}

func TestSetupLinkCreatesOrganization(t *testing.T) {
	srv, db, orgs, _, _ := setupServer(t)
	l := newLink(t, srv, "newco", map[string]any{"create_organization": true})
	if _, err := db.Org("newco"); err == nil {
		t.Fatal("the organization exists before the link is used")
	}
	var v SetupView
	if st := call(t, srv, l.Token, "GET", "/v1/setup", nil, &v); st != http.StatusOK || v.Organization.ID != "newco" || v.Link.OrganizationCreatedAt == nil {
		t.Fatalf("first use = %d %+v", st, v)
	}
	if fi, err := os.Stat(filepath.Join(orgs, "newco", "reports")); err != nil || !fi.IsDir() {
		t.Fatalf("the organization's folder: %v", err)
	}
	if st := call(t, srv, dirTestToken, "GET", "/v1/organizations/newco/setup_links", nil, nil); st != http.StatusOK {
		t.Errorf("list links of the new organization = %d", st)
	}
}

func TestKeysLastUsedAndPrivateKey(t *testing.T) {
	srv, db, _, _, opKeys := setupServer(t)
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	if err := db.AppendAudit([]state.AuditRecord{
		{Org: "acme", Time: at.Add(-time.Hour), Event: "session.start", KeyFP: opKeys["acme"]},
		{Org: "acme", Time: at, Event: "session.start", KeyFP: opKeys["acme"]},
		{Org: "acme", Time: at.Add(time.Minute), Event: "session.end", KeyFP: opKeys["acme"]},
	}, 0); err != nil {
		t.Fatal(err)
	}
	var keys keyList
	call(t, srv, dirTestToken, "GET", "/v1/organizations/acme/keys", nil, &keys)
	if len(keys.Data) != 1 || keys.Data[0].LastUsedAt == nil || !keys.Data[0].LastUsedAt.Equal(at) {
		t.Errorf("keys = %+v; want last_used_at %v", keys.Data, at)
	}
	private := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	var e errorBody
	if st := call(t, srv, dirTestToken, "POST", "/v1/organizations/acme/keys", map[string]string{"public_key": private}, &e); st != http.StatusBadRequest || !strings.Contains(e.Error.Message, "private key") {
		t.Errorf("POST a private key = %d %q; want 400 saying it is a private key", st, e.Error.Message)
	}
}

func TestSummary(t *testing.T) {
	srv, db, _, _, _ := setupServer(t)
	applySnapshot(t, db, "acme", func(a *state.ApplyTx) error {
		for _, id := range []string{"u1", "u2"} {
			if err := a.PutUser([]byte(id), true, userJSON("acme", id, true)); err != nil {
				return err
			}
		}
		return nil
	})
	db.AppendAudit([]state.AuditRecord{{Org: "acme", Time: time.Now(), Event: "upload", File: "users.csv", Bytes: 10}}, 0)
	newLink(t, srv, "acme", nil)
	var sum Summary
	if st := call(t, srv, dirTestToken, "GET", "/v1/organizations/acme/summary", nil, &sum); st != http.StatusOK {
		t.Fatalf("summary = %d", st)
	}
	if sum.Counts.Users != 2 || sum.LastUpload == nil || sum.LastUpload.File != "users.csv" || sum.Keys != 1 || sum.ActiveLinks != 1 || sum.LastBatch == nil {
		t.Errorf("summary = %+v", sum)
	}
	if st := call(t, srv, dirTestToken, "GET", "/v1/organizations/nope/summary", nil, nil); st != http.StatusNotFound {
		t.Errorf("summary of an unknown organization = %d; want 404", st)
	}
}

func TestAdminReportLeavesOutOperatorNotes(t *testing.T) {
	raw := []byte(`{"status":"held","notes":["upload again or ask"],"operator_notes":["rosterd batch approve acme B1"]}`)
	got := string(adminReport(raw))
	if strings.Contains(got, "operator_notes") || strings.Contains(got, "rosterd batch approve") || !strings.Contains(got, "upload again") {
		t.Errorf("adminReport = %s", got)
	}
	if got := string(adminReport([]byte(`{"status":"applied"}`))); got != `{"status":"applied"}` {
		t.Errorf("adminReport without operator notes = %s; want it unchanged", got)
	}
}

// TestSetupLinkUnknownTokenChallenges: a token that is not a link's, well
// formed or not, is answered alike: 401 with a Bearer challenge (RFC 6750),
// so that a client cannot tell a guessed token's form from its absence.
func TestSetupLinkUnknownTokenChallenges(t *testing.T) {
	srv, _, _, _, _ := setupServer(t)
	wellFormed, _ := newSetupToken()
	for name, tok := range map[string]string{"malformed": "not-a-token", "unknown": wellFormed} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/setup", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s token: %d, WWW-Authenticate %q; want 401 with a Bearer challenge", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}
