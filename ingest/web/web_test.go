package web

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/ingest/httpapi"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state"
)

const testToken = "api-token-for-tests"

// testServer serves the API and the pages over a real bbolt file, as the
// daemon does, with organization acme.
type testServer struct {
	*httptest.Server
	db   *state.DB
	logs *bytes.Buffer
}

func newTestServer(t *testing.T, ops ...Operator) *testServer {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(filepath.Join(dir, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	api := httpapi.New(httpapi.Config{DB: db, Token: testToken, OrgsRoot: filepath.Join(dir, "orgs"), Logger: log})
	host := sftptest.GenerateKey(t, dir, "host")
	w, err := New(Config{API: api, Token: testToken, Operators: ops, HostKeys: []ssh.PublicKey{host.Public},
		SFTPAddr: func() string { return "0.0.0.0:2022" }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", w)
	mux.Handle("/setup/", w)
	mux.Handle("/", api)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: srv, db: db, logs: logs}
}

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// html/template writes some characters of values as entities ("+" in
	// a fingerprint as &#43;): compare with the text a reader sees.
	return resp.StatusCode, html.UnescapeString(string(b)), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// signIn signs c in with the API token (name empty) or an operator's
// password and returns the CSRF token of the console's pages.
func signIn(t *testing.T, ts *testServer, c *http.Client, name, secret string) (int, string) {
	t.Helper()
	_, page, _ := fetch(t, c, "GET", ts.URL+"/console/signin", nil)
	st, _, _ := fetch(t, c, "POST", ts.URL+"/console/signin", url.Values{"csrf": {csrfOf(t, page)}, "operator": {name}, "secret": {secret}})
	if st != http.StatusSeeOther {
		return st, ""
	}
	_, page, _ = fetch(t, c, "GET", ts.URL+"/console/", nil)
	return st, csrfOf(t, page)
}

func TestConsoleSignInAndCSRF(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	ts := newTestServer(t, Operator{Name: "alice", PasswordHash: string(hash)})
	c := browser(t)
	if st, _, h := fetch(t, c, "GET", ts.URL+"/console/", nil); st != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin") {
		t.Fatalf("GET /console/ signed out = %d %q; want a redirect to the sign-in", st, h.Get("Location"))
	}
	for _, tc := range []struct{ name, secret string }{{"", "wrong"}, {"alice", "wrong"}, {"bob", "correct horse"}, {"alice", testToken}} {
		if st, _ := signIn(t, ts, browser(t), tc.name, tc.secret); st != http.StatusUnauthorized {
			t.Errorf("sign in as %q with %q = %d; want 401", tc.name, tc.secret, st)
		}
	}
	if st, _ := signIn(t, ts, browser(t), "alice", "correct horse"); st != http.StatusSeeOther {
		t.Errorf("sign in as alice = %d; want 303", st)
	}
	st, csrf := signIn(t, ts, c, "", testToken)
	if st != http.StatusSeeOther {
		t.Fatalf("sign in with the token = %d", st)
	}
	u, _ := url.Parse(ts.URL + "/console/")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie && ck.Value == "" {
			t.Error("empty session cookie")
		}
	}

	// A form without the CSRF token, or with another, changes nothing.
	for _, form := range []url.Values{{"name": {"evil"}}, {"name": {"evil"}, "csrf": {"x" + csrf}}} {
		if st, _, _ := fetch(t, c, "POST", ts.URL+"/console/orgs", form); st != http.StatusForbidden {
			t.Errorf("POST /console/orgs %v = %d; want 403", form, st)
		}
	}
	if _, err := ts.db.Org("evil"); err == nil {
		t.Fatal("a form without the CSRF token created an organization")
	}
	if st, _, _ := fetch(t, c, "POST", ts.URL+"/console/orgs", url.Values{"name": {"good"}, "csrf": {csrf}}); st != http.StatusSeeOther {
		t.Fatalf("POST /console/orgs with the token = %d", st)
	}
	if _, err := ts.db.Org("good"); err != nil {
		t.Fatalf("the console did not create the organization: %v", err)
	}
	// Nothing the API refuses: a bad name is refused with the API's message.
	fetch(t, c, "POST", ts.URL+"/console/orgs", url.Values{"name": {"Bad Name"}, "csrf": {csrf}})
	if _, page, _ := fetch(t, c, "GET", ts.URL+"/console/", nil); !strings.Contains(page, "use 1 to 63 lowercase letters") {
		t.Errorf("the API's refusal is not shown:\n%s", page)
	}

	if st, _, _ := fetch(t, c, "POST", ts.URL+"/console/signout", url.Values{"csrf": {csrf}}); st != http.StatusSeeOther {
		t.Fatalf("sign out = %d", st)
	}
	if st, _, _ := fetch(t, c, "GET", ts.URL+"/console/", nil); st != http.StatusSeeOther {
		t.Errorf("GET /console/ after sign-out = %d; want a redirect to the sign-in", st)
	}
	if strings.Contains(ts.logs.String(), testToken) || strings.Contains(ts.logs.String(), "correct horse") {
		t.Errorf("a secret is in the log:\n%s", ts.logs)
	}
}

func TestSessionCookieFlags(t *testing.T) {
	ts := newTestServer(t)
	c := browser(t)
	_, page, _ := fetch(t, c, "GET", ts.URL+"/console/signin", nil)
	req, _ := http.NewRequest("POST", ts.URL+"/console/signin", strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}, "secret": {testToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var raw string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, sessionCookie+"=") {
			raw = v
		}
	}
	for _, want := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/console/", "Max-Age=43200"} {
		if !strings.Contains(raw, want) {
			t.Errorf("session cookie %q lacks %s", raw, want)
		}
	}
}

func TestSetupPageAddsKeyAndRefusesOtherLinks(t *testing.T) {
	ts := newTestServer(t)
	var link struct{ URL, Token, ID string }
	call := func(method, path string, body, out any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
	}
	call("POST", "/v1/organizations/acme/setup_links", map[string]any{}, &link)
	c := browser(t)
	st, page, h := fetch(t, c, "GET", link.URL, nil)
	if st != http.StatusOK || !strings.Contains(page, "<code id=\"conn-user\">acme</code>") {
		t.Fatalf("setup page = %d:\n%s", st, page)
	}
	if h.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("headers = %v; want no referrer and a strict CSP", h)
	}
	// The host comes from the request when the SFTP address has none.
	if host, _, _ := strings.Cut(strings.TrimPrefix(ts.URL, "http://"), ":"); !strings.Contains(page, "<code id=\"conn-host\">"+host+"</code>") {
		t.Errorf("the connection's host is not %s", host)
	}

	key := sftptest.GenerateKey(t, t.TempDir(), "admin")
	st, _, h = fetch(t, c, "POST", link.URL+"/keys", url.Values{"public_key": {string(key.AuthorizedKey)}})
	if st != http.StatusSeeOther {
		t.Fatalf("add key = %d", st)
	}
	_, page, _ = fetch(t, c, "GET", ts.URL+h.Get("Location"), nil)
	fp := ssh.FingerprintSHA256(key.Public)
	if !strings.Contains(page, fp+" added") || !strings.Contains(page, `<code class="fp">`+fp+`</code>`) {
		t.Errorf("the page does not show the added key %s:\n%s", fp, page)
	}
	if ok, _ := ts.db.HasKey("acme", fp); !ok {
		t.Error("the key was not stored")
	}

	st, page, _ = fetch(t, c, "POST", link.URL+"/keys", url.Values{"public_key": {"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"}})
	if st != http.StatusBadRequest || !strings.Contains(page, "private key") || strings.Contains(page, "BEGIN OPENSSH PRIVATE KEY") {
		t.Errorf("pasting a private key = %d; want 400, a warning, and the key not echoed:\n%s", st, page)
	}

	call("DELETE", "/v1/organizations/acme/setup_links/"+link.ID, nil, nil)
	st, page, _ = fetch(t, c, "GET", link.URL, nil)
	if st != http.StatusGone || !strings.Contains(page, "This setup link was withdrawn") {
		t.Errorf("revoked link = %d:\n%s", st, page)
	}
	other := sftptest.GenerateKey(t, t.TempDir(), "other")
	if st, _, _ := fetch(t, c, "POST", link.URL+"/keys", url.Values{"public_key": {string(other.AuthorizedKey)}}); st != http.StatusGone {
		t.Errorf("add key with a revoked link = %d; want 410", st)
	}
	if ok, _ := ts.db.HasKey("acme", ssh.FingerprintSHA256(other.Public)); ok {
		t.Error("a revoked link added a key")
	}
	if st, page, _ := fetch(t, c, "GET", ts.URL+"/setup/"+strings.Repeat("A", 43), nil); st != http.StatusNotFound || !strings.Contains(page, "not valid") {
		t.Errorf("unknown link = %d:\n%s", st, page)
	}
	if strings.Contains(ts.logs.String(), link.Token) {
		t.Errorf("the token is in the log:\n%s", ts.logs)
	}
}

func TestCSVTemplatesAreValid(t *testing.T) {
	ts := newTestServer(t)
	for name := range csvTemplates {
		st, body, h := fetch(t, http.DefaultClient, "GET", ts.URL+"/setup/templates/"+name, nil)
		if st != 200 || !strings.Contains(h.Get("Content-Disposition"), name) || strings.Count(body, "\n") != 3 {
			t.Errorf("template %s = %d %q", name, st, body)
		}
	}
}

func TestParseReportTables(t *testing.T) {
	raw := `{"version":1,"status":"held","files":[],"counts":{"users":3},"changes":{"users_deleted":2},"issues":[],"issues_total":0,
		"would_delete":[{"id":"E1","email":"a@example.com","name":"A \u001b[31mB"},{"id":"E2","email":"b@example.com","extra":1}],
		"held":{"users":[{"id":"E3"}],"reason":"x"}}`
	v, err := parseReport([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "held" || v.Changes.UsersDeleted != 2 || len(v.Tables) != 2 {
		t.Fatalf("parseReport = %+v", v)
	}
	want := table{Title: "Would delete", Columns: []string{"id", "email", "name", "extra"},
		Rows: [][]string{{"E1", "a@example.com", "A \x1b[31mB", ""}, {"E2", "b@example.com", "", "1"}}}
	got := v.Tables[0]
	if got.Title != want.Title || strings.Join(got.Columns, ",") != strings.Join(want.Columns, ",") || len(got.Rows) != 2 ||
		strings.Join(got.Rows[0], ",") != strings.Join(want.Rows[0], ",") || strings.Join(got.Rows[1], ",") != strings.Join(want.Rows[1], ",") {
		t.Errorf("table = %+v; want %+v", got, want)
	}
	if v.Tables[1].Title != "Held users" {
		t.Errorf("nested table title = %q", v.Tables[1].Title)
	}
	if got := visible("A \x1b[31mB\x07"); got != `A \x1b[31mB\x07` {
		t.Errorf("visible = %q", got)
	}
}
